<#
.SYNOPSIS
  Stop and remove the membroker service (same behaviour as uninstall-service.cmd).

.DESCRIPTION
  Runs sc.exe stop, waits until the service is STOPPED, then sc.exe delete, and removes the
  event-log source registered by install-service.ps1. A service that is not installed is not
  an error. Must run elevated.

.PARAMETER Name
  Service name (default membroker).

.PARAMETER TimeoutSeconds
  How long to wait for STOPPED (default 60).

.EXAMPLE
  .\uninstall-service.ps1 -Name membroker-eu1
#>
[CmdletBinding()]
param(
  [ValidatePattern('^[A-Za-z0-9._-]{1,80}$')]
  [string]$Name = 'membroker',
  [int]$TimeoutSeconds = 60
)

$ErrorActionPreference = 'Stop'

function Fail([string]$Message) {
  Write-Host "uninstall-service: error: $Message" -ForegroundColor Red
  exit 1
}

function Invoke-Sc([string]$ArgumentLine) {
  $p = Start-Process -FilePath "$env:SystemRoot\System32\sc.exe" -ArgumentList $ArgumentLine `
    -NoNewWindow -PassThru
  [void]$p.Handle # keeps the exit code readable after the process is gone
  $p.WaitForExit()
  return $p.ExitCode
}

$principal = New-Object Security.Principal.WindowsPrincipal(
  [Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  Fail 'this script must run elevated (Run as administrator).'
}

$svc = Get-Service -Name $Name -ErrorAction SilentlyContinue
if (-not $svc) {
  Write-Host "uninstall-service: service $Name is not installed"
  exit 0
}

# Stop it; asked again while it is RUNNING (e.g. it was still starting the first time).
$deadline = (Get-Date).AddSeconds($TimeoutSeconds)
while ($true) {
  $svc.Refresh()
  if ($svc.Status -eq 'Stopped') { break }
  if ($svc.Status -eq 'Running') { [void](Invoke-Sc "stop $Name") }
  if ((Get-Date) -ge $deadline) {
    [void](Invoke-Sc "query $Name")
    Fail "service $Name did not stop within $TimeoutSeconds s"
  }
  Start-Sleep -Milliseconds 250
}

$rc = Invoke-Sc "delete $Name"
if ($rc -ne 0) { Fail "sc delete $Name failed (exit code $rc)" }

$key = "HKLM:\SYSTEM\CurrentControlSet\Services\EventLog\Application\$Name"
if (Test-Path $key) { Remove-Item -Path $key -Recurse -Force -ErrorAction SilentlyContinue }

Write-Host "uninstall-service: removed $Name"
exit 0
