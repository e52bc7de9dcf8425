# A blob is copied to an arbitrary address and entered at its first byte: it must not
# need any relocation. Fail the build if the linker left any.
execute_process(COMMAND readelf -r ${ELF} OUTPUT_VARIABLE relocs RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf failed on ${ELF}")
endif()
if(relocs MATCHES "R_X86_64")
  message(FATAL_ERROR "blob ${ELF} has relocations; it must be position independent:\n${relocs}")
endif()
