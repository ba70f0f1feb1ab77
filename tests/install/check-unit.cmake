# check-unit.cmake - the installed systemd unit passes `systemd-analyze verify` (test
# install.systemd_unit, Linux only).
#
#   cmake -DBUILD_DIR=... -DWORK_DIR=... -DUNIT=lib/systemd/system/membroker.service
#         -DPREFIX=<CMAKE_INSTALL_PREFIX> -P check-unit.cmake
#
# `cmake --install` with DESTDIR=WORK_DIR/root stages the release as it would land under
# PREFIX, so the unit's ExecStart binary and its -c config exist under that root. verify runs
# with --root on it: systemd resolves the unit's dependencies (sysinit.target, ...) and
# ExecReload's /bin/kill there too, so the host's units and kill are copied in. It passes
# when verify exits 0 and prints nothing (an unknown key or a bad value is only a warning
# there, exit 0: the output must be empty). The unit's own promises are checked by name.
# Prints "SKIPPED: <why>" (CTest: SKIP_REGULAR_EXPRESSION) when systemd-analyze is missing.
foreach(v BUILD_DIR WORK_DIR UNIT PREFIX)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check-unit.cmake: -D${v}=... is required")
  endif()
endforeach()
find_program(SA systemd-analyze)
if(NOT SA)
  message("SKIPPED: systemd-analyze is not installed (Debian package systemd)")
  return()
endif()
set(root ${WORK_DIR}/root)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${root})
set(ENV{DESTDIR} ${root})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} RESULT_VARIABLE rc
                OUTPUT_VARIABLE out ERROR_VARIABLE out)
unset(ENV{DESTDIR})
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install with DESTDIR=${root} failed (${rc}):\n${out}")
endif()
set(unit ${root}${PREFIX}/${UNIT})
if(NOT EXISTS ${unit})
  message(FATAL_ERROR "the unit was not installed as ${PREFIX}/${UNIT}")
endif()
file(READ ${unit} text)
# What the unit promises (README, "Installing as a Linux daemon").
foreach(line "Type=notify" "WatchdogSec=30s" "StateDirectory=membroker" "RemoveIPC=no"
             "ExecReload=/bin/kill -HUP $MAINPID" "NotifyAccess=main")
  string(FIND "${text}" "\n${line}\n" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "the unit has no line '${line}':\n${text}")
  endif()
endforeach()
if(NOT text MATCHES "\nExecStart=([^ \n]+) service -c ([^ \n]+)\n")
  message(FATAL_ERROR "the unit has no 'ExecStart=BINARY service -c CONFIG' line:\n${text}")
endif()
set(exe ${CMAKE_MATCH_1})
set(cfg ${CMAKE_MATCH_2})
foreach(f ${exe} ${cfg})
  if(NOT EXISTS ${root}${f})
    message(FATAL_ERROR "the unit names ${f}, which `cmake --install` did not put there")
  endif()
endforeach()
if(text MATCHES "@[A-Z_]+@")
  message(FATAL_ERROR "the unit keeps a placeholder ${CMAKE_MATCH_0} of its template")
endif()
# The host's units (targets the unit depends on) and /bin/kill, under the root.
file(MAKE_DIRECTORY ${root}/usr/lib/systemd ${root}/bin)
foreach(d /usr/lib/systemd/system /lib/systemd/system)
  if(IS_DIRECTORY ${d})
    file(COPY ${d} DESTINATION ${root}/usr/lib/systemd)
    break()
  endif()
endforeach()
file(COPY /bin/kill DESTINATION ${root}/bin FOLLOW_SYMLINK_CHAIN)
execute_process(COMMAND ${SA} verify --man=no --generators=no --root=${root} ${unit}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out STREQUAL "")
  message(FATAL_ERROR "systemd-analyze verify ${PREFIX}/${UNIT} (exit ${rc}):\n${out}")
endif()
message("systemd-analyze verify: ${PREFIX}/${UNIT} ok (ExecStart ${exe}, -c ${cfg})")
