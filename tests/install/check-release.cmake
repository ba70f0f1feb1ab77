# check-release.cmake - the release tests (CTest release.install, release.cpack): the tree an
# operator unpacks must hold every file the install scripts and the docs name. Run by CTest as
#
#   cmake -DMODE=install|cpack -DBUILD_DIR=<build> -DWORK_DIR=<scratch> [-DCONFIG=<config>]
#         -DCPACK=<cpack> -DPACKAGE=<package file name, no extension>
#         -DFILES=<a|b|...> [-DEMULATOR=<a|b>] -DBROKER=<bin/membroker[.exe]>
#         -DCONFIG_FILE=<config/membroker.json or share/...> -P check-release.cmake
#
# install: `cmake --install BUILD_DIR --prefix WORK_DIR/stage`; every file of FILES (paths
#   relative to the prefix, '|'-separated) must exist, and the installed broker must accept the
#   installed config (`membroker --check-config`; a cross build runs it under EMULATOR, e.g.
#   scripts/wine-run.sh with the build's Wine prefix).
# cpack: `cpack -G ZIP` into WORK_DIR, then `cmake -E tar t` on PACKAGE.zip: every file of
#   FILES must be listed under the folder PACKAGE/.
cmake_minimum_required(VERSION 3.16)

foreach(v MODE BUILD_DIR WORK_DIR FILES BROKER CONFIG_FILE)
  if("${${v}}" STREQUAL "")
    message(FATAL_ERROR "check-release.cmake: -D${v}= is required")
  endif()
endforeach()

# mb_run(<what> <out-var> [WORKING_DIRECTORY dir] COMMAND...): run, fail with the command and
# its output unless it exits 0; <out-var> receives stdout + stderr.
function(mb_run what out)
  cmake_parse_arguments(R "" "WORKING_DIRECTORY" "" ${ARGN})
  if(NOT R_WORKING_DIRECTORY)
    set(R_WORKING_DIRECTORY ${WORK_DIR})
  endif()
  execute_process(COMMAND ${R_UNPARSED_ARGUMENTS} WORKING_DIRECTORY ${R_WORKING_DIRECTORY}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${R_UNPARSED_ARGUMENTS}")
    message(FATAL_ERROR "${what} failed (${rc}):\n  ${cmd}\n${o}${e}")
  endif()
  set(${out} "${o}${e}" PARENT_SCOPE)
endfunction()

string(REPLACE "|" ";" files "${FILES}")
string(REPLACE "|" ";" emulator "${EMULATOR}")
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(config_args)
if(NOT "${CONFIG}" STREQUAL "")
  set(config_args --config ${CONFIG})
endif()

if(MODE STREQUAL "install")
  set(stage ${WORK_DIR}/stage)
  mb_run("cmake --install" out ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${stage}
         ${config_args})
  set(missing)
  foreach(f IN LISTS files)
    if(NOT EXISTS ${stage}/${f})
      list(APPEND missing ${f})
    endif()
  endforeach()
  if(missing)
    string(REPLACE ";" "\n  " missing "${missing}")
    message(FATAL_ERROR "the install into ${stage} has no\n  ${missing}\nit installed:\n${out}")
  endif()
  # The installed broker with the installed config: a release that unpacks and runs.
  set(config_path ${stage}/${CONFIG_FILE})
  if(emulator)
    string(REPLACE "/" "\\" config_path "Z:${config_path}") # Wine: the Unix root is drive Z:
  endif()
  mb_run("the installed broker" out ${emulator} ${stage}/${BROKER} --check-config ${config_path})
  if(NOT out MATCHES "valid")
    message(FATAL_ERROR "membroker --check-config on the installed config said:\n${out}")
  endif()
  list(LENGTH files n)
  message(STATUS "release.install: all ${n} files installed; the installed config is valid")
elseif(MODE STREQUAL "cpack")
  foreach(v CPACK PACKAGE)
    if("${${v}}" STREQUAL "")
      message(FATAL_ERROR "check-release.cmake: -D${v}= is required for MODE=cpack")
    endif()
  endforeach()
  set(cpack_config)
  if(NOT "${CONFIG}" STREQUAL "")
    set(cpack_config -C ${CONFIG})
  endif()
  mb_run("cpack -G ZIP" out ${CPACK} -G ZIP --config ${BUILD_DIR}/CPackConfig.cmake
         -B ${WORK_DIR} ${cpack_config})
  set(zip ${WORK_DIR}/${PACKAGE}.zip)
  if(NOT EXISTS ${zip})
    message(FATAL_ERROR "cpack made no ${zip}:\n${out}")
  endif()
  mb_run("cmake -E tar t" listing ${CMAKE_COMMAND} -E tar t ${zip})
  string(REPLACE "\r" "" listing "${listing}")
  string(REPLACE "\n" ";" entries "${listing}")
  set(missing)
  foreach(f IN LISTS files)
    list(FIND entries "${PACKAGE}/${f}" at)
    if(at LESS 0)
      list(APPEND missing ${PACKAGE}/${f})
    endif()
  endforeach()
  if(missing)
    string(REPLACE ";" "\n  " missing "${missing}")
    message(FATAL_ERROR "${zip} has no\n  ${missing}\nit holds:\n${listing}")
  endif()
  list(LENGTH files n)
  message(STATUS "release.cpack: ${PACKAGE}.zip holds all ${n} files")
else()
  message(FATAL_ERROR "check-release.cmake: MODE must be install or cpack, not '${MODE}'")
endif()
