<#
.SYNOPSIS
  Install membroker as a Windows service (same behaviour as install-service.cmd).

.DESCRIPTION
  Registers the service with sc.exe, the same steps as `membroker install` (which uses the
  SCM API instead):
    sc.exe create <Name> binPath= "\"<exe>\" service -c \"<config>\" -n <Name>" start= auto
    sc.exe description <Name> "..."
    sc.exe failure <Name> reset= 86400 actions= restart/5000/restart/60000/""/0
    sc.exe failureflag <Name> 1      (failure actions also when it stops with an error code)
    sc.exe sidtype <Name> unrestricted
    PreshutdownTimeout = 60000 (ms), a value of the service's registry key
  and the event-log source <Name> (EventMessageFile = membroker.exe, which carries the
  message table; TypesSupported = 7). Then it reads every item back (sc qc, qdescription,
  qfailure, qfailureflag, qsidtype; the registry) and prints "ok", "differs" or "could not
  verify" for each. Exit code 1 if an item differs (the service stays installed).

  The config is validated first (membroker --check-config). If a step after `sc create`
  fails, the service is deleted again. Must run elevated.

  Default layout (an unpacked release):  <root>\bin\membroker.exe
                                         <root>\config\membroker.json
                                         <root>\scripts\install-service.ps1

.PARAMETER Name
  Service name (default membroker); also passed to membroker with -n. Letters, digits,
  '.', '_' and '-'. Use one name per broker instance.

.PARAMETER BinaryPath
  membroker.exe (default: <root>\bin\membroker.exe, <root> being this script's parent folder).

.PARAMETER ConfigPath
  Configuration file (default: <root>\config\membroker.json). The service reads it at every
  start; keep it where only administrators can change it.

.PARAMETER Start
  Start the service after installing it and wait until it is RUNNING.

.EXAMPLE
  .\install-service.ps1 -Start
.EXAMPLE
  .\install-service.ps1 -Name membroker-eu1 -ConfigPath D:\worlds\eu1\membroker.json -Start
#>
[CmdletBinding()]
param(
  [ValidatePattern('^[A-Za-z0-9._-]{1,80}$')]
  [string]$Name = 'membroker',
  [string]$BinaryPath = (Join-Path $PSScriptRoot '..\bin\membroker.exe'),
  [string]$ConfigPath = (Join-Path $PSScriptRoot '..\config\membroker.json'),
  [switch]$Start,
  [int]$TimeoutSeconds = 60
)

$ErrorActionPreference = 'Stop'

function Fail([string]$Message) {
  Write-Host "install-service: error: $Message" -ForegroundColor Red
  exit 1
}

# sc.exe with a raw argument line: PowerShell 5.1 does not escape the embedded quotes of
# binPath= for native commands, so the command line is passed as it is. Returns the exit code.
function Invoke-Sc([string]$ArgumentLine) {
  $p = Start-Process -FilePath "$env:SystemRoot\System32\sc.exe" -ArgumentList $ArgumentLine `
    -NoNewWindow -PassThru
  [void]$p.Handle # keeps the exit code readable after the process is gone
  $p.WaitForExit()
  return $p.ExitCode
}

function Undo-Install {
  Write-Host "install-service: removing the half-installed service $Name"
  [void](Invoke-Sc "delete $Name")
}

# ---- checks -------------------------------------------------------------------------------
$principal = New-Object Security.Principal.WindowsPrincipal(
  [Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
  Fail 'this script must run elevated (Run as administrator).'
}

if (-not (Test-Path -LiteralPath $BinaryPath -PathType Leaf)) {
  Fail "membroker executable not found: $BinaryPath (pass -BinaryPath)"
}
if (-not (Test-Path -LiteralPath $ConfigPath -PathType Leaf)) {
  Fail "config file not found: $ConfigPath (pass -ConfigPath)"
}
$exe = (Resolve-Path -LiteralPath $BinaryPath).ProviderPath
$config = (Resolve-Path -LiteralPath $ConfigPath).ProviderPath
if ($exe.Contains('"') -or $config.Contains('"')) {
  Fail 'paths must not contain double quotes.'
}

& $exe --check-config $config
if ($LASTEXITCODE -ne 0) {
  Fail "invalid config $config (see above)"
}

if (Get-Service -Name $Name -ErrorAction SilentlyContinue) {
  Fail "a service named $Name is already installed (remove it with uninstall-service.ps1 -Name $Name)"
}

# ---- install ------------------------------------------------------------------------------
$display = if ($Name -eq 'membroker') { 'membroker' } else { "membroker ($Name)" }
$binPath = "\`"$exe\`" service -c \`"$config\`" -n $Name"

$rc = Invoke-Sc "create $Name binPath= `"$binPath`" start= auto DisplayName= `"$display`""
if ($rc -ne 0) { Fail "sc create failed (exit code $rc)" }

$rc = Invoke-Sc "description $Name `"Memory broker for game servers: shared world memory, player slots and object pools.`""
if ($rc -ne 0) { Undo-Install; Fail "sc description failed (exit code $rc)" }

$rc = Invoke-Sc "failure $Name reset= 86400 actions= restart/5000/restart/60000/`"`"/0"
if ($rc -ne 0) { Undo-Install; Fail "sc failure failed (exit code $rc)" }

# Not available in every SCM (Wine's sc.exe lacks them): the read-back below says what could
# not be verified. Without the flag, failure actions run on crashes only, not when the broker
# stops with an error code.
$rc = Invoke-Sc "failureflag $Name 1"
if ($rc -ne 0) { Write-Warning "sc failureflag failed (exit code $rc); failure actions apply to crashes only" }
$rc = Invoke-Sc "sidtype $Name unrestricted"
if ($rc -ne 0) { Write-Warning "sc sidtype failed (exit code $rc)" }

# sc has no switch for the preshutdown timeout: the SCM keeps it in the service's key.
$svcKey = "HKLM:\SYSTEM\CurrentControlSet\Services\$Name"
$evtKey = "HKLM:\SYSTEM\CurrentControlSet\Services\EventLog\Application\$Name"
try {
  [void](New-ItemProperty -Path $svcKey -Name PreshutdownTimeout -PropertyType DWord -Value 60000 -Force)
} catch { Undo-Install; Fail "cannot set PreshutdownTimeout under ${svcKey}: $_" }

# The event-log source: membroker.exe carries the message table of its events.
try {
  if (-not (Test-Path $evtKey)) { [void](New-Item -Path $evtKey -Force) }
  [void](New-ItemProperty -Path $evtKey -Name EventMessageFile -PropertyType ExpandString -Value $exe -Force)
  [void](New-ItemProperty -Path $evtKey -Name TypesSupported -PropertyType DWord -Value 7 -Force)
} catch {
  Undo-Install
  Remove-Item -Path $evtKey -Recurse -Force -ErrorAction SilentlyContinue
  Fail "cannot register the event-log source ${evtKey}: $_"
}

# ---- read back ----------------------------------------------------------------------------
# Each item: "ok", "differs" (the service stays installed, exit 1) or "could not verify" (the
# sc query command is missing or failed, as with Wine's sc).
Write-Host "install-service: created $Name; reading back what was set:"
$script:differs = 0
$script:unverified = 0
function Get-ScText([string]$Command) {
  # Not 'Stop' here: PowerShell 5.1 turns a native command's stderr into a terminating error.
  $ErrorActionPreference = 'Continue'
  $text = & "$env:SystemRoot\System32\sc.exe" $Command $Name 2>&1 | Out-String
  if ($LASTEXITCODE -ne 0) { return $null }
  return $text
}
function Test-Item([string]$Item, $Text, [string]$Want, [string]$Tool) {
  if ($null -eq $Text) {
    Write-Host "  ${Item}: could not verify: $Tool failed or is not available here"
    $script:unverified++
  } elseif ($Text.Contains($Want)) {
    Write-Host "  ${Item}: ok"
  } else {
    Write-Host "  ${Item}: differs: $Tool does not show $Want"
    $script:differs++
  }
}
$qc = Get-ScText 'qc'
Test-Item 'command line' $qc $exe 'sc qc'
Test-Item 'config path' $qc $config 'sc qc'
Test-Item 'start type' $qc 'AUTO_START' 'sc qc'
Test-Item 'description' (Get-ScText 'qdescription') 'Memory broker for game servers' 'sc qdescription'
$qf = Get-ScText 'qfailure'
Test-Item 'failure reset period' $qf '86400' 'sc qfailure'
Test-Item 'failure actions' $qf 'RESTART' 'sc qfailure'
Test-Item 'failure actions flag' (Get-ScText 'qfailureflag') 'TRUE' 'sc qfailureflag'
Test-Item 'service SID type' (Get-ScText 'qsidtype') 'UNRESTRICTED' 'sc qsidtype'
$v = (Get-ItemProperty -Path $svcKey -Name PreshutdownTimeout -ErrorAction SilentlyContinue)
Test-Item 'preshutdown timeout' $(if ($v) { [string]$v.PreshutdownTimeout }) '60000' 'the registry'
$v = (Get-ItemProperty -Path $evtKey -ErrorAction SilentlyContinue)
Test-Item 'event message file' $(if ($v) { [string]$v.EventMessageFile }) $exe 'the registry'
Test-Item 'event types supported' $(if ($v) { [string]$v.TypesSupported }) '7' 'the registry'
if ($script:differs -gt 0) {
  Fail "$Name is installed, but what was read back differs (see above); remove it with uninstall-service.ps1 -Name $Name"
}
if ($script:unverified -gt 0) {
  Write-Host "install-service: $($script:unverified) item(s) could not be verified here (see above)"
}

Write-Host "install-service: installed $Name"
Write-Host "  binary: $exe"
Write-Host "  config: $config"

# ---- large pages: the service account (LocalSystem) gets "Lock pages in memory" ----------
$cfgJson = Get-Content -LiteralPath $config -Raw | ConvertFrom-Json
if (@($cfgJson.regions | Where-Object { $_.large_pages -eq $true }).Count -gt 0) {
  & (Join-Path $PSScriptRoot 'grant-lock-memory.ps1') -Account LocalSystem
  if ($LASTEXITCODE -ne 0) {
    Write-Host "install-service: warning: regions with large_pages will get normal pages (the broker logs why)"
  }
}

# ---- start --------------------------------------------------------------------------------
if ($Start) {
  $rc = Invoke-Sc "start $Name"
  if ($rc -ne 0) {
    [void](Invoke-Sc "query $Name")
    Fail "sc start failed (exit code $rc); see the broker's log (config log.file) or the event log"
  }
  $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
  do {
    Start-Sleep -Milliseconds 250
    $status = (Get-Service -Name $Name).Status
  } while ($status -ne 'Running' -and $status -ne 'Stopped' -and (Get-Date) -lt $deadline)
  if ($status -ne 'Running') {
    [void](Invoke-Sc "query $Name")
    Fail "service $Name is $status, not Running; see the broker's log (config log.file) or the event log"
  }
  Write-Host "install-service: $Name is running"
}
exit 0
