"""A worker whose key is dated in the master's future (the master's clock is behind): refused, saying so.

It was refused as "bad signature (not made with its registered key ...: a worker given a new key, or a backup
restored, needs its current bundle)", which sent the operator after the wrong thing.  Real gpg, a key made at a
time a day ahead (gpg's --faked-system-time), as by a machine whose clock is a day ahead of the master's."""

import time

import gnupg

from papertrader import gpgkeys


def test_a_key_from_the_future_is_refused_as_a_clock_problem(tmp_path):
    ahead = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() + 86400))
    (tmp_path / "worker").mkdir(mode=0o700)
    worker = gnupg.GPG(gnupghome=gpgkeys._short_home(str(tmp_path / "worker")),
                       options=["--faked-system-time", ahead])
    key = worker.gen_key(worker.gen_key_input(key_type="EDDSA", key_curve="ed25519", key_usage="sign",
                                              name_real="PaperTrader worker w1", name_email="w1@example.invalid",
                                              expire_date=0, no_protection=True))
    armor = worker.export_keys(key.fingerprint)
    signature = str(worker.sign("challenge", detach=True, binary=False))
    gpgkeys.stop_agent(str(tmp_path / "worker"))
    keyring = gpgkeys.Keyring(str(tmp_path / "master"))
    try:
        # Registered while the clocks agreed (as the master's clock then was), then the master's went back a day.
        fingerprint = gnupg.GPG(gnupghome=gpgkeys._short_home(str(tmp_path / "master")),
                                options=["--faked-system-time", ahead]).import_keys(armor).fingerprints[0]
        assert keyring.verify("challenge", signature, fingerprint) == (False, "clock")
        # A key of now, from a worker whose clock agrees: good; a wrong signature: bad, and not the clock's.
        home = str(tmp_path / "w2")
        good, armor2 = gpgkeys.create_key(home, "w2")
        keyring.import_key(armor2)
        assert keyring.verify("challenge", gpgkeys.sign(home, "challenge"), good) == (True, None)
        assert keyring.verify("another", gpgkeys.sign(home, "challenge"), good) == (False, None)
        gpgkeys.stop_agent(home)
    finally:
        keyring.close()
