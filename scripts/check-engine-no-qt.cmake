# cmake -DENGINE_DIR=... -P check-engine-no-qt.cmake : fails if engine/ includes a Qt header.
file(GLOB_RECURSE files "${ENGINE_DIR}/*.h" "${ENGINE_DIR}/*.cpp")
foreach(f ${files})
  file(STRINGS "${f}" hits REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"](Q[A-Za-z]|qt[a-z]*/)")
  if(hits)
    message(FATAL_ERROR "engine/ must not include Qt: ${f}: ${hits}")
  endif()
endforeach()
