@echo off
rem uninstall-service.cmd - stop and remove the membroker service (same as uninstall-service.ps1).
rem
rem   uninstall-service.cmd [/name NAME] [/timeout SECONDS]
rem
rem   /name     service name (default membroker)
rem   /timeout  how long to wait for STOPPED (default 60 s)
rem
rem Runs sc stop, waits until the service is STOPPED, then sc delete, and removes the
rem event-log source registered by install-service. A service that is not installed is not an
rem error. Must run elevated. Exit code: 0 removed (or not installed), 1 failed, 2 bad usage.
setlocal EnableExtensions DisableDelayedExpansion

set "NAME=membroker"
set "TIMEOUT=60"

:args
if "%~1"=="" goto args_done
if /i "%~1"=="/name" if not "%~2"=="" (set "NAME=%~2" & shift & shift & goto args)
if /i "%~1"=="/timeout" if not "%~2"=="" (set "TIMEOUT=%~2" & shift & shift & goto args)
echo uninstall-service: bad argument "%~1" (or a missing value after it) 1>&2
echo usage: %~nx0 [/name NAME] [/timeout SECONDS] 1>&2
exit /b 2
:args_done

rem fltmc needs elevation; where it is missing (Wine), net session answers instead.
set "ELEVATED=0"
fltmc >nul 2>&1
if not errorlevel 1 set "ELEVATED=1"
if "%ELEVATED%"=="0" (
  net session >nul 2>&1
  if not errorlevel 1 set "ELEVATED=1"
)
if "%ELEVATED%"=="0" (
  echo uninstall-service: error: this script must run elevated ^(Run as administrator^). 1>&2
  exit /b 1
)

sc query "%NAME%" >nul 2>&1
if errorlevel 1 (
  echo uninstall-service: service %NAME% is not installed
  exit /b 0
)

rem Stop it (asked again each round while it is RUNNING, e.g. if it was still starting).
set /a LEFT=%TIMEOUT%
:wait_stopped
sc query "%NAME%" | find "STOPPED" >nul
if not errorlevel 1 goto stopped
sc query "%NAME%" | find "RUNNING" >nul
if not errorlevel 1 sc stop "%NAME%" >nul
set /a LEFT-=1
if %LEFT% LSS 0 (
  sc query "%NAME%"
  echo uninstall-service: error: service %NAME% did not stop within %TIMEOUT% s 1>&2
  exit /b 1
)
rem about one second (ping waits 1 s between its two echoes)
ping -n 2 127.0.0.1 >nul
goto wait_stopped

:stopped
sc delete "%NAME%" >nul
if errorlevel 1 (
  echo uninstall-service: error: sc delete %NAME% failed 1>&2
  exit /b 1
)
reg delete "HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\%NAME%" /f >nul 2>&1
echo uninstall-service: removed %NAME%
exit /b 0
