@echo off
rem install-service.cmd - install membroker as a Windows service (same as install-service.ps1).
rem
rem   install-service.cmd [/name NAME] [/exe PATH] [/config PATH] [/start] [/timeout SECONDS]
rem
rem   /name     service name (default membroker), also passed to membroker as -n;
rem             letters, digits, '.', '_' and '-'. One name per broker instance.
rem   /exe      membroker.exe (default: <root>\bin\membroker.exe)
rem   /config   configuration file (default: <root>\config\membroker.json)
rem   /start    start the service and wait until it is RUNNING (up to /timeout, 60 s)
rem
rem   <root> is the parent folder of this script (an unpacked release: bin\, config\,
rem   scripts\). Runs: sc create NAME binPath= "\"EXE\" service -c \"CONFIG\" -n NAME"
rem   start= auto, sc description, sc failure (restart after 5 s, 5 s, 60 s; reset after a
rem   day), sc failureflag NAME 1, and registers the event-log source NAME when the .NET
rem   Framework's EventLogMessages.dll is present. The config is validated first; if a step
rem   after sc create fails, the service is deleted again. Must run elevated.
rem   Exit code: 0 done, 1 failed, 2 bad usage.
setlocal EnableExtensions DisableDelayedExpansion
rem Exit codes are tested with "if errorlevel 1" on the next line, not with "||" / "&&", which
rem Wine's cmd (8.0) runs regardless of the exit code.

set "NAME=membroker"
set "EXE=%~dp0..\bin\membroker.exe"
set "CONFIG=%~dp0..\config\membroker.json"
set "START=0"
set "TIMEOUT=60"

:args
if "%~1"=="" goto args_done
if /i "%~1"=="/start" (set "START=1" & shift & goto args)
if /i "%~1"=="/name" if not "%~2"=="" (set "NAME=%~2" & shift & shift & goto args)
if /i "%~1"=="/exe" if not "%~2"=="" (set "EXE=%~2" & shift & shift & goto args)
if /i "%~1"=="/config" if not "%~2"=="" (set "CONFIG=%~2" & shift & shift & goto args)
if /i "%~1"=="/timeout" if not "%~2"=="" (set "TIMEOUT=%~2" & shift & shift & goto args)
echo install-service: bad argument "%~1" (or a missing value after it) 1>&2
echo usage: %~nx0 [/name NAME] [/exe PATH] [/config PATH] [/start] [/timeout SECONDS] 1>&2
exit /b 2
:args_done

rem The name: only [A-Za-z0-9._-] (any other character leaves a token between these delims).
set "BADNAME=0"
if "%NAME%"=="" set "BADNAME=1"
for /f "delims=ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-" %%A in ("%NAME%") do set "BADNAME=1"
if "%BADNAME%"=="1" (
  echo install-service: error: service name "%NAME%" may contain only letters, digits, '.', '_' and '-' 1>&2
  exit /b 2
)

rem ---- checks -------------------------------------------------------------------------------
rem fltmc needs elevation; where it is missing (Wine), net session answers instead.
set "ELEVATED=0"
fltmc >nul 2>&1
if not errorlevel 1 set "ELEVATED=1"
if "%ELEVATED%"=="0" (
  net session >nul 2>&1
  if not errorlevel 1 set "ELEVATED=1"
)
if "%ELEVATED%"=="0" (
  echo install-service: error: this script must run elevated ^(Run as administrator^). 1>&2
  exit /b 1
)

if not exist "%EXE%" (
  echo install-service: error: membroker executable not found: "%EXE%" ^(pass /exe^) 1>&2
  exit /b 1
)
if not exist "%CONFIG%" (
  echo install-service: error: config file not found: "%CONFIG%" ^(pass /config^) 1>&2
  exit /b 1
)
for %%I in ("%EXE%") do set "EXE=%%~fI"
for %%I in ("%CONFIG%") do set "CONFIG=%%~fI"

"%EXE%" --check-config "%CONFIG%"
if errorlevel 1 (
  echo install-service: error: invalid config "%CONFIG%" ^(see above^) 1>&2
  exit /b 1
)

sc query "%NAME%" >nul 2>&1
if not errorlevel 1 (
  echo install-service: error: a service named %NAME% is already installed ^(remove it with uninstall-service.cmd /name %NAME%^) 1>&2
  exit /b 1
)

rem ---- install ------------------------------------------------------------------------------
set "DISPLAY=membroker (%NAME%)"
if /i "%NAME%"=="membroker" set "DISPLAY=membroker"

sc create "%NAME%" binPath= "\"%EXE%\" service -c \"%CONFIG%\" -n %NAME%" start= auto DisplayName= "%DISPLAY%"
if errorlevel 1 (
  echo install-service: error: sc create failed 1>&2
  exit /b 1
)
sc description "%NAME%" "Memory broker for game servers: shared world memory, player slots and object pools."
if errorlevel 1 (
  echo install-service: error: sc description failed 1>&2
  goto undo
)
sc failure "%NAME%" reset= 86400 actions= restart/5000/restart/5000/restart/60000
if errorlevel 1 (
  echo install-service: error: sc failure failed 1>&2
  goto undo
)
rem Not in every SCM (Wine's sc lacks it): then failure actions apply to crashes only.
sc failureflag "%NAME%" 1 >nul 2>&1
if errorlevel 1 (
  echo install-service: warning: sc failureflag failed; failure actions apply to crashes only 1>&2
)

rem Event-log source (optional): every event ID maps to the text "%%1" in this DLL.
if exist "%SystemRoot%\Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll" (
  reg add "HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\%NAME%" /v EventMessageFile /t REG_EXPAND_SZ /d "%%SystemRoot%%\Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll" /f >nul 2>&1
  reg add "HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\%NAME%" /v TypesSupported /t REG_DWORD /d 7 /f >nul 2>&1
)

echo install-service: installed %NAME%
echo   binary: %EXE%
echo   config: %CONFIG%
if "%START%"=="0" exit /b 0

rem ---- start --------------------------------------------------------------------------------
sc start "%NAME%" >nul
if errorlevel 1 (
  sc query "%NAME%"
  echo install-service: error: sc start failed; see the broker's log ^(config log.file^) or the event log 1>&2
  exit /b 1
)
set /a LEFT=%TIMEOUT%
:wait_running
sc query "%NAME%" | find "RUNNING" >nul
if not errorlevel 1 goto running
sc query "%NAME%" | find "STOPPED" >nul
if not errorlevel 1 goto start_failed
set /a LEFT-=1
if %LEFT% LEQ 0 goto start_failed
rem about one second (ping waits 1 s between its two echoes)
ping -n 2 127.0.0.1 >nul
goto wait_running

:running
echo install-service: %NAME% is running
exit /b 0

:start_failed
sc query "%NAME%"
echo install-service: error: service %NAME% did not reach RUNNING; see the broker's log ^(config log.file^) or the event log 1>&2
exit /b 1

:undo
echo install-service: removing the half-installed service %NAME% 1>&2
sc delete "%NAME%" >nul 2>&1
exit /b 1
