# Freestanding, position-independent blobs (parasite, restorer stub).
# Each is compiled without libc, linked at address 0 by blob.ld, checked to carry no
# dynamic relocations (it must run wherever it is mapped), flattened with objcopy and
# embedded into ckpt with .incbin. The blob's entry point is its first byte.
set(BLOB_CFLAGS -std=c++20 -O2 -g0 -fPIE -ffreestanding -fno-builtin -nostdlib
    -fno-exceptions -fno-rtti -fno-asynchronous-unwind-tables -fno-unwind-tables
    -fno-stack-protector -fno-stack-clash-protection -fcf-protection=none
    -fno-jump-tables -mgeneral-regs-only -mno-red-zone -fvisibility=hidden
    -Wall -Wextra -Werror -I${CMAKE_SOURCE_DIR}/src)

function(add_blob name source)
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/blob_${name}.o)
  set(elf ${CMAKE_CURRENT_BINARY_DIR}/blob_${name}.elf)
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/blob_${name}.bin)
  set(asm ${CMAKE_CURRENT_BINARY_DIR}/blob_${name}_embed.S)
  file(GLOB_RECURSE deps ${CMAKE_SOURCE_DIR}/src/freestanding/*.h ${CMAKE_SOURCE_DIR}/src/common/rt_sigframe.h
       ${CMAKE_SOURCE_DIR}/src/parasite/*.h ${CMAKE_SOURCE_DIR}/src/restorer/*.h)
  add_custom_command(
    OUTPUT ${bin}
    COMMAND ${CMAKE_CXX_COMPILER} ${BLOB_CFLAGS} -c ${CMAKE_SOURCE_DIR}/${source} -o ${obj}
    COMMAND ${CMAKE_LINKER} -pie --no-dynamic-linker -z noexecstack -z norelro --no-warn-rwx-segments --hash-style=gnu
            -T ${CMAKE_SOURCE_DIR}/src/freestanding/blob.ld ${obj} -o ${elf}
    COMMAND ${CMAKE_COMMAND} -DELF=${elf} -P ${CMAKE_SOURCE_DIR}/cmake/CheckBlob.cmake
    COMMAND ${CMAKE_OBJCOPY} -O binary --only-section=.blob ${elf} ${bin}
    DEPENDS ${CMAKE_SOURCE_DIR}/${source} ${CMAKE_SOURCE_DIR}/src/freestanding/blob.ld
            ${CMAKE_SOURCE_DIR}/cmake/CheckBlob.cmake ${deps}
    COMMENT "Building freestanding blob ${name}"
    VERBATIM)
  file(WRITE ${asm}.in
"    .section .rodata
    .balign 64
    .globl ckpt_blob_${name}_start
    .globl ckpt_blob_${name}_end
ckpt_blob_${name}_start:
    .incbin \"${bin}\"
ckpt_blob_${name}_end:
    .section .note.GNU-stack,\"\",@progbits
")
  configure_file(${asm}.in ${asm} COPYONLY)
  set_source_files_properties(${asm} PROPERTIES OBJECT_DEPENDS ${bin})
  add_library(blob_${name} STATIC ${asm})
endfunction()
