<#
.SYNOPSIS
  Grants an account "Lock pages in memory" (SeLockMemoryPrivilege), which the broker needs for
  regions with "large_pages": true (SEC_LARGE_PAGES), and reads the grant back.
.DESCRIPTION
  The same step as `membroker install` takes (service/svc_install.c): LsaOpenPolicy +
  LsaAddAccountRights, then LsaEnumerateAccountRights to check. install-service.ps1 and
  install-service.cmd call it when the config has a region with large_pages. Run it as an
  administrator. The account's processes get the right at their next logon: restart the service.
  Exit codes: 0 granted (or held already), 1 failed (the reason printed).
.EXAMPLE
  .\grant-lock-memory.ps1 -Account LocalSystem
.EXAMPLE
  .\grant-lock-memory.ps1 -Account 'NT SERVICE\membroker'
#>
[CmdletBinding()]
param([string]$Account = 'LocalSystem')

$ErrorActionPreference = 'Stop'

Add-Type -TypeDefinition @'
using System;
using System.Runtime.InteropServices;
public static class MbLsa {
  [StructLayout(LayoutKind.Sequential)]
  struct LSA_UNICODE_STRING { public ushort Length, MaximumLength; public IntPtr Buffer; }
  [StructLayout(LayoutKind.Sequential)]
  struct LSA_OBJECT_ATTRIBUTES {
    public int Length; public IntPtr RootDirectory, ObjectName; public int Attributes;
    public IntPtr SecurityDescriptor, SecurityQualityOfService;
  }
  [DllImport("advapi32.dll")] static extern uint LsaOpenPolicy(IntPtr system,
    ref LSA_OBJECT_ATTRIBUTES attrs, int access, out IntPtr policy);
  [DllImport("advapi32.dll")] static extern uint LsaAddAccountRights(IntPtr policy, byte[] sid,
    LSA_UNICODE_STRING[] rights, int count);
  [DllImport("advapi32.dll")] static extern uint LsaEnumerateAccountRights(IntPtr policy,
    byte[] sid, out IntPtr rights, out int count);
  [DllImport("advapi32.dll")] static extern uint LsaFreeMemory(IntPtr p);
  [DllImport("advapi32.dll")] static extern uint LsaClose(IntPtr policy);
  [DllImport("advapi32.dll")] static extern int LsaNtStatusToWinError(uint status);
  const int POLICY_CREATE_ACCOUNT = 0x10, POLICY_LOOKUP_NAMES = 0x800;

  // "" when the account holds the right afterwards, else what failed.
  public static string Grant(byte[] sid, string right) {
    var oa = new LSA_OBJECT_ATTRIBUTES();
    oa.Length = Marshal.SizeOf(typeof(LSA_OBJECT_ATTRIBUTES));
    IntPtr pol;
    uint st = LsaOpenPolicy(IntPtr.Zero, ref oa, POLICY_CREATE_ACCOUNT | POLICY_LOOKUP_NAMES, out pol);
    if (st != 0) return "LsaOpenPolicy: Win32 error " + LsaNtStatusToWinError(st);
    var r = new LSA_UNICODE_STRING();
    r.Buffer = Marshal.StringToHGlobalUni(right);
    r.Length = (ushort)(right.Length * 2);
    r.MaximumLength = (ushort)(r.Length + 2);
    try {
      st = LsaAddAccountRights(pol, sid, new[] { r }, 1);
      if (st != 0) return "LsaAddAccountRights: Win32 error " + LsaNtStatusToWinError(st);
      IntPtr list; int n;
      st = LsaEnumerateAccountRights(pol, sid, out list, out n);
      if (st != 0) return "LsaEnumerateAccountRights: Win32 error " + LsaNtStatusToWinError(st);
      bool found = false;
      int size = Marshal.SizeOf(typeof(LSA_UNICODE_STRING));
      for (int i = 0; i < n; i++) {
        var u = (LSA_UNICODE_STRING)Marshal.PtrToStructure(new IntPtr(list.ToInt64() + i * size),
                                                          typeof(LSA_UNICODE_STRING));
        if (Marshal.PtrToStringUni(u.Buffer, u.Length / 2) == right) found = true;
      }
      LsaFreeMemory(list);
      return found ? "" : "the right is not there after the grant";
    } finally {
      Marshal.FreeHGlobal(r.Buffer);
      LsaClose(pol);
    }
  }
}
'@

try {
  if ($Account -eq 'LocalSystem') {
    $sid = New-Object System.Security.Principal.SecurityIdentifier('S-1-5-18')
  } else {
    $sid = (New-Object System.Security.Principal.NTAccount($Account)).Translate(
      [System.Security.Principal.SecurityIdentifier])
  }
} catch {
  Write-Host "grant-lock-memory: error: no such account: $Account" -ForegroundColor Red
  exit 1
}
$bytes = New-Object byte[] ($sid.BinaryLength)
$sid.GetBinaryForm($bytes, 0)
$why = [MbLsa]::Grant($bytes, 'SeLockMemoryPrivilege')
if ($why -ne '') {
  Write-Host "grant-lock-memory: error: $Account was not granted SeLockMemoryPrivilege: $why (run as an administrator, or grant `"Lock pages in memory`" in secpol.msc)" -ForegroundColor Red
  exit 1
}
Write-Host "grant-lock-memory: $Account holds SeLockMemoryPrivilege (`"Lock pages in memory`"); it takes effect at the service's next start"
exit 0
