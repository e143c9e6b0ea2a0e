/* Kernel-matrix workload of the exec family: does nothing, under a name (comm) nothing else has. */
int main(void) { return 0; }
