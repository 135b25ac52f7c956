"""Worker identity with GnuPG (python-gnupg drives the ``gpg`` program).

Each worker owns a GnuPG home in its data dir holding its signing key.  The
master keeps a keyring of registered workers' public keys and the fingerprint of
each in its database.  To connect, a worker signs a fresh challenge from the
master; the master checks the signature was made by the registered key.
"""

import hashlib
import os
import shutil
import subprocess
import tempfile

import gnupg


class GPGMissing(RuntimeError):
    """The ``gpg`` program is not installed."""


def check_installed():
    """Raise GPGMissing with a clear message if the gpg program is not on PATH."""
    if shutil.which("gpg") is None:
        raise GPGMissing(
            "the 'gpg' program was not found: install GnuPG (Debian/Ubuntu: apt-get install gnupg)"
        )


#: gpg-agent puts its socket in the GnuPG home; a Unix socket path is limited to ~107 bytes.
MAX_HOME = 70


def _short_home(home):
    """``home``, or a short private symlink to it when its path is too long for gpg-agent's socket."""
    home = os.path.abspath(home)
    if len(home) <= MAX_HOME:
        return home
    base = os.path.join(tempfile.gettempdir(), f"papertrader-gpg-{os.getuid()}")
    os.makedirs(base, mode=0o700, exist_ok=True)
    info = os.lstat(base)
    if info.st_uid != os.getuid() or (info.st_mode & 0o077) or os.path.islink(base):
        raise RuntimeError(f"{base} is not a private directory of this user; remove it")
    link = os.path.join(base, hashlib.sha256(home.encode()).hexdigest()[:16])
    if os.path.islink(link) and os.readlink(link) == home:
        return link
    tmp = f"{link}.{os.getpid()}"
    os.symlink(home, tmp)
    os.replace(tmp, link)
    return link


def _gpg(home):
    check_installed()
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)
    return gnupg.GPG(gnupghome=_short_home(home))


def create_key(home, name):
    """Create a worker's Ed25519 signing key in ``home``; return (fingerprint, public key armor)."""
    gpg = _gpg(home)
    existing = gpg.list_keys(True)
    if existing:
        fingerprint = existing[0]["fingerprint"]
    else:
        params = gpg.gen_key_input(
            key_type="EDDSA",
            key_curve="ed25519",
            key_usage="sign",
            name_real=f"PaperTrader worker {name}",
            name_email=f"{name}@workers.papertrader.invalid",
            expire_date=0,
            no_protection=True,
        )
        result = gpg.gen_key(params)
        if not result.fingerprint:
            raise RuntimeError(f"gpg could not create a key: {result.stderr.strip()[-300:]}")
        fingerprint = result.fingerprint
    return fingerprint, gpg.export_keys(fingerprint)


def stop_agent(home):
    """Stop the gpg-agent that gpg started for ``home`` (it would outlive us otherwise)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf and os.path.isdir(home):
        subprocess.run([gpgconf, "--homedir", _short_home(home), "--kill", "gpg-agent"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def sign(home, data: str) -> str:
    """Detached ASCII-armored signature of ``data`` with the key in ``home``."""
    gpg = _gpg(home)
    result = gpg.sign(data, detach=True, binary=False)
    if not result.data:
        raise RuntimeError(f"gpg could not sign: {result.stderr.strip()[-300:]}")
    return result.data.decode("ascii")


class Keyring:
    """The master's keyring of registered workers' public keys."""

    def __init__(self, home):
        self.home = home
        self.gpg = _gpg(home)

    def close(self):
        stop_agent(self.home)

    def fingerprint_of(self, armor) -> str:
        """The fingerprint of the public key in ``armor``, without importing it (a refused registration leaves
        nothing in the keyring)."""
        found = self.gpg.scan_keys_mem(armor)
        if not found or not found[0].get("fingerprint"):
            raise ValueError("no public key found in the given data")
        return found[0]["fingerprint"]

    def import_key(self, armor) -> str:
        result = self.gpg.import_keys(armor)
        if not result.fingerprints:
            raise ValueError("no public key found in the given data")
        return result.fingerprints[0]

    def delete_key(self, fingerprint):
        """Remove a public key from the keyring (a revoked worker's)."""
        self.gpg.delete_keys(fingerprint)

    def verify(self, data: str, signature: str, fingerprint: str):
        """(True, None) if ``signature`` is a good signature of ``data`` by key ``fingerprint``; else (False, why):
        ``why`` is "clock" when gpg refused the key as made in its future (this machine's clock is behind the
        one that made it), "missing" when the keyring does not hold that key at all (a database restored from a backup
        made before a revoke or a key rotation, which took it out), else None."""
        if len(signature) > 8192:
            return False, None
        with tempfile.TemporaryDirectory() as tmp:
            sig_path = os.path.join(tmp, "challenge.sig")
            with open(sig_path, "w", encoding="ascii", errors="replace") as f:
                f.write(signature)
            verified = self.gpg.verify_data(sig_path, data.encode("utf-8"))
        signer = (verified.pubkey_fingerprint or verified.fingerprint or "").upper()
        if bool(verified.valid) and signer == fingerprint.upper():
            return True, None
        warped = "in the future" in (verified.stderr or "") or "time warp" in (verified.stderr or "")
        if warped:
            return False, "clock"
        if not self.gpg.list_keys(keys=[fingerprint]):
            return False, "missing"
        return False, None
