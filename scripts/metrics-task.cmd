@echo off
rem metrics-task.cmd - write membroker's metrics where windows_exporter's textfile collector
rem reads them (`mbctl metrics --textfile DIR`: membroker_<instance>.prom, replaced atomically).
rem
rem   metrics-task.cmd [/dir DIR] [/instance NAME] [/every SECONDS]
rem
rem   /dir       the collector's folder (default: windows_exporter's own,
rem              C:\Program Files\windows_exporter\textfile_inputs; it is the folder given to
rem              windows_exporter as --collector.textfile.directories)
rem   /instance  the broker's instance (default: mbctl's, i.e. MEMBROKER_INSTANCE or "default")
rem   /every     write again every SECONDS, forever (for a task started at boot: Task Scheduler
rem              repeats a task at most once a minute); without it, write once and exit
rem
rem   Once a minute, as SYSTEM (elevated prompt):
rem     schtasks /create /tn "membroker metrics" /sc minute /mo 1 /ru SYSTEM /rl HIGHEST ^
rem       /tr "\"C:\Program Files\membroker\scripts\metrics-task.cmd\""
rem   Every 15 s, started at boot (one long-running task):
rem     schtasks /create /tn "membroker metrics" /sc onstart /ru SYSTEM /rl HIGHEST ^
rem       /tr "\"C:\Program Files\membroker\scripts\metrics-task.cmd\" /every 15"
rem   Remove it: schtasks /delete /tn "membroker metrics" /f
rem
rem   Exit code: mbctl's (0 written; 3 the broker is not running, and what mbctl does to the
rem   file then is README's "mbctl metrics"), 2 bad usage.
rem   NOT TESTED on Windows or under Wine: README says so (Operations: windows_exporter).
setlocal EnableExtensions DisableDelayedExpansion

set "MBCTL=%~dp0..\bin\mbctl.exe"
set "DIR=%ProgramFiles%\windows_exporter\textfile_inputs"
set "INSTANCE="
set "EVERY="

:args
if "%~1"=="" goto run
if /i "%~1"=="/dir" (set "DIR=%~2" & shift & shift & goto args)
if /i "%~1"=="/instance" (set "INSTANCE=--instance %~2" & shift & shift & goto args)
if /i "%~1"=="/every" (set "EVERY=%~2" & shift & shift & goto args)
echo metrics-task.cmd: unknown argument "%~1" 1>&2
echo usage: metrics-task.cmd [/dir DIR] [/instance NAME] [/every SECONDS] 1>&2
exit /b 2

:run
if not exist "%DIR%\" (
  echo metrics-task.cmd: the folder "%DIR%" does not exist: give windows_exporter's textfile folder with /dir 1>&2
  exit /b 2
)
if not defined EVERY goto once
set /a "WAIT=%EVERY%+1" 2>nul
if %WAIT% LSS 2 (
  echo metrics-task.cmd: /every needs a number of seconds, 1 or more 1>&2
  exit /b 2
)

:loop
"%MBCTL%" %INSTANCE% metrics --textfile "%DIR%"
rem A task has no console: timeout.exe refuses to run without one, ping waits as well.
ping -n %WAIT% 127.0.0.1 >nul
goto loop

:once
"%MBCTL%" %INSTANCE% metrics --textfile "%DIR%"
exit /b %ERRORLEVEL%
