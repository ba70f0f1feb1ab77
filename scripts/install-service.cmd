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
rem   scripts\). The same steps as `membroker install` (which uses the SCM API instead of sc):
rem     sc create NAME binPath= "\"EXE\" service -c \"CONFIG\" -n NAME" start= auto
rem     sc description      sc failure (restart after 5 s, after 60 s, then none; reset after
rem     a day)   sc failureflag NAME 1   sc sidtype NAME unrestricted
rem     PreshutdownTimeout = 60000 ms (a value of the service's registry key)
rem     the event-log source NAME: EventMessageFile = EXE (its message table), TypesSupported 7
rem   then reads each item back (sc qc / qdescription / qfailure / qfailureflag / qsidtype,
rem   reg query) and prints "ok", "differs" or "could not verify" (an sc command this SCM lacks,
rem   e.g. under Wine). The config is validated first; if a step after sc create fails, the
rem   service is deleted again. Must run elevated.
rem   Exit code: 0 done (every item that could be read back is right), 1 failed, 2 bad usage.
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
set "SVCKEY=HKLM\SYSTEM\CurrentControlSet\Services\%NAME%"
set "EVTKEY=HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\%NAME%"
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
sc failure "%NAME%" reset= 86400 actions= restart/5000/restart/60000/""/0
if errorlevel 1 (
  echo install-service: error: sc failure failed 1>&2
  goto undo
)
rem Not in every SCM (Wine's sc lacks them): the read-back below says what was not verified.
sc failureflag "%NAME%" 1 >nul 2>&1
if errorlevel 1 echo install-service: warning: sc failureflag failed; failure actions apply to crashes only 1>&2
sc sidtype "%NAME%" unrestricted >nul 2>&1
if errorlevel 1 echo install-service: warning: sc sidtype failed 1>&2
rem sc has no switch for the preshutdown timeout: the SCM keeps it in the service's key.
reg add "%SVCKEY%" /v PreshutdownTimeout /t REG_DWORD /d 60000 /f >nul
if errorlevel 1 (
  echo install-service: error: cannot set PreshutdownTimeout under %SVCKEY% 1>&2
  goto undo
)

rem The event-log source: membroker.exe carries the message table of its events.
reg add "%EVTKEY%" /v EventMessageFile /t REG_EXPAND_SZ /d "%EXE%" /f >nul
if errorlevel 1 (
  echo install-service: error: cannot register the event-log source %EVTKEY% 1>&2
  goto undo
)
reg add "%EVTKEY%" /v TypesSupported /t REG_DWORD /d 7 /f >nul
if errorlevel 1 (
  echo install-service: error: cannot register the event-log source %EVTKEY% 1>&2
  goto undo
)

rem ---- read back ----------------------------------------------------------------------------
echo install-service: created %NAME%; reading back what was set:
set "OUT=%TEMP%\membroker-install-%NAME%.txt"
set "DIFFERS=0"
set "UNVERIFIED=0"
sc qc "%NAME%" >"%OUT%" 2>&1
if errorlevel 1 (set "RC=1") else (set "RC=0")
call :verify "command line" "%EXE%" "sc qc"
call :verify "config path" "%CONFIG%" "sc qc"
call :verify "start type" "AUTO_START" "sc qc"
sc qdescription "%NAME%" >"%OUT%" 2>&1
if errorlevel 1 (set "RC=1") else (set "RC=0")
call :verify "description" "Memory broker for game servers" "sc qdescription"
sc qfailure "%NAME%" >"%OUT%" 2>&1
if errorlevel 1 (set "RC=1") else (set "RC=0")
call :verify "failure reset period" "86400" "sc qfailure"
call :verify "failure actions" "RESTART" "sc qfailure"
sc qfailureflag "%NAME%" >"%OUT%" 2>&1
if errorlevel 1 (set "RC=1") else (set "RC=0")
call :verify "failure actions flag" "TRUE" "sc qfailureflag"
sc qsidtype "%NAME%" >"%OUT%" 2>&1
if errorlevel 1 (set "RC=1") else (set "RC=0")
call :verify "service SID type" "UNRESTRICTED" "sc qsidtype"
reg query "%SVCKEY%" /v PreshutdownTimeout >"%OUT%" 2>&1
if errorlevel 1 (set "RC=1") else (set "RC=0")
call :verify "preshutdown timeout" "0xea60" "reg query PreshutdownTimeout"
reg query "%EVTKEY%" /v EventMessageFile >"%OUT%" 2>&1
if errorlevel 1 (set "RC=1") else (set "RC=0")
call :verify "event message file" "%EXE%" "reg query EventMessageFile"
reg query "%EVTKEY%" /v TypesSupported >"%OUT%" 2>&1
if errorlevel 1 (set "RC=1") else (set "RC=0")
call :verify "event types supported" "0x7" "reg query TypesSupported"
del "%OUT%" >nul 2>&1
if "%DIFFERS%"=="1" (
  echo install-service: error: %NAME% is installed, but what was read back differs ^(see above^); remove it with uninstall-service.cmd /name %NAME% 1>&2
  exit /b 1
)
if not "%UNVERIFIED%"=="0" echo install-service: %UNVERIFIED% item^(s^) could not be verified here ^(see above^)

echo install-service: installed %NAME%
echo   binary: %EXE%
echo   config: %CONFIG%

rem ---- large pages: LocalSystem gets "Lock pages in memory" (grant-lock-memory.ps1) ----------
findstr /R /C:"\"large_pages\"[ ]*:[ ]*true" "%CONFIG%" >nul 2>&1
if not errorlevel 1 (
  powershell -NoProfile -ExecutionPolicy Bypass -File "%~dp0grant-lock-memory.ps1" -Account LocalSystem
  if errorlevel 1 echo install-service: warning: regions with large_pages will get normal pages ^(the broker logs why^) 1>&2
)
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
reg delete "%EVTKEY%" /f >nul 2>&1
exit /b 1

rem call :verify ITEM TEXT TOOL - after TOOL wrote %OUT% and RC says whether it ran (0): print
rem whether %OUT% shows TEXT. No if-blocks around the texts: a path may hold parentheses.
:verify
if "%RC%"=="1" goto verify_unknown
find "%~2" "%OUT%" >nul 2>&1
if errorlevel 1 goto verify_differs
echo   %~1: ok
exit /b 0
:verify_unknown
echo   %~1: could not verify: %~3 failed or is not available here
set /a UNVERIFIED+=1
exit /b 0
:verify_differs
echo   %~1: differs: %~3 does not show %~2
set "DIFFERS=1"
exit /b 0
