# Builds one BPF program family: bpf/<family>.bpf.c -> <family>.bpf.o -> <family>.skel.h.
# The skeleton embeds the object, so the agent binary is the only file to ship.

find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPF_STRIP NAMES llvm-strip llvm-strip-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64|amd64")
  set(PODSIGHT_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(PODSIGHT_BPF_ARCH arm64)
else()
  message(FATAL_ERROR "podsight: no pinned vmlinux.h for ${CMAKE_SYSTEM_PROCESSOR}")
endif()

set(PODSIGHT_BPF_OUT ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${PODSIGHT_BPF_OUT})
add_library(podsight_skeletons INTERFACE)
target_include_directories(podsight_skeletons INTERFACE ${PODSIGHT_BPF_OUT} ${CMAKE_SOURCE_DIR}/bpf/shared)

# podsight_bpf_family(<name>): adds <name>.skel.h to podsight_skeletons.
function(podsight_bpf_family name)
  set(src ${CMAKE_SOURCE_DIR}/bpf/${name}.bpf.c)
  set(obj ${PODSIGHT_BPF_OUT}/${name}.bpf.o)
  set(skel ${PODSIGHT_BPF_OUT}/${name}.skel.h)
  file(GLOB bpf_headers CONFIGURE_DEPENDS
       ${CMAKE_SOURCE_DIR}/bpf/include/*.h ${CMAKE_SOURCE_DIR}/bpf/shared/*.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -target bpf -g -O2 -Wall -Werror
            -D__TARGET_ARCH_${PODSIGHT_BPF_ARCH}
            -I${CMAKE_SOURCE_DIR}/bpf/vmlinux/${PODSIGHT_BPF_ARCH}
            -I${CMAKE_SOURCE_DIR}/bpf/include -I${CMAKE_SOURCE_DIR}/bpf/shared
            -c ${src} -o ${obj}.tmp
    # DWARF is not needed at run time; BTF (kept by -g) is what CO-RE relocates against.
    COMMAND ${BPF_STRIP} -g ${obj}.tmp -o ${obj}
    DEPENDS ${src} ${bpf_headers}
    COMMENT "BPF ${name}.bpf.c"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(bpf_${name} DEPENDS ${skel})
  add_dependencies(podsight_skeletons bpf_${name})
endfunction()
