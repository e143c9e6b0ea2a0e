/* Kernel-matrix network workload: exactly known traffic over loopback, so counts can be exact.
 *
 *   pxnet udp N SIZE PORT   N datagrams of SIZE payload bytes to 127.0.0.1:PORT, each received by a
 *                           socket of this process before the next is sent
 *   pxnet tcp N PORT        N connections to a listener of this process on 127.0.0.1:PORT, each
 *                           accepted and closed by both ends; then N connects to PORT+1, where
 *                           nothing listens (refused)
 * Exit status 0 only when every step did what it should. Built static by scripts/kernel-matrix.sh. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int udp(int n, int size, int port)
{
	struct sockaddr_in a = loopback(port);
	char buf[65536];
	int rx = socket(AF_INET, SOCK_DGRAM, 0);
	int tx = socket(AF_INET, SOCK_DGRAM, 0);

	if (rx < 0 || tx < 0 || size < 0 || size > (int)sizeof(buf) ||
	    bind(rx, (struct sockaddr *)&a, sizeof(a)) != 0)
		return 1;
	memset(buf, 'x', sizeof(buf));
	for (int i = 0; i < n; i++) {
		if (sendto(tx, buf, (size_t)size, 0, (struct sockaddr *)&a, sizeof(a)) != size)
			return 1;
		if (recv(rx, buf, sizeof(buf), 0) != size)
			return 1;
	}
	return 0;
}

static int tcp(int n, int port)
{
	struct sockaddr_in a = loopback(port);
	struct sockaddr_in closed = loopback(port + 1);
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, 16) != 0)
		return 1;
	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);
		int s;

		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) != 0)
			return 1;
		s = accept(l, NULL, NULL);
		if (s < 0)
			return 1;
		close(c);
		close(s);
	}
	for (int i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM, 0);

		if (c < 0 || connect(c, (struct sockaddr *)&closed, sizeof(closed)) == 0)
			return 1;
		close(c);
	}
	close(l);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "udp") == 0)
		return udp(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
	if (argc == 4 && strcmp(argv[1], "tcp") == 0)
		return tcp(atoi(argv[2]), atoi(argv[3]));
	fprintf(stderr, "usage: pxnet udp N SIZE PORT | pxnet tcp N PORT\n");
	return 2;
}
