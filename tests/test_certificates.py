"""The deployment's certificates over time: none outlives its CA, a master's is renewed before it expires, and
a client told of an expired CA says so (it said "not signed by the CA file given": the wrong file to look for)."""

import datetime
import json
import os

import pytest_twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from papertrader import tls
from papertrader.master import files
from papertrader.tls import CertificateAuthority

NOW = datetime.datetime.now(datetime.timezone.utc)


def test_a_certificate_issued_later_never_outlives_its_ca(tmp_path):
    ca = CertificateAuthority.ensure(str(tmp_path))
    path = str(tmp_path / "worker.pem")
    ca.issue("PaperTrader worker w9", ["localhost"], path)  # a worker registered after the CA was made
    assert tls.read_certificate(path).not_valid_after_utc == tls.expires(ca.pem())  # (a moment later than the CA's, before)


def _short_lived(ca, path, days):
    """A certificate for the master, signed by ``ca``, that expires in ``days`` (as one issued years ago)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "m")]))
            .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=3000)).not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(tls._san(tls.default_hostnames()), critical=False)
            .sign(ca.key, hashes.SHA256()))
    tls.write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())
                      + cert.public_bytes(serialization.Encoding.PEM))


def test_a_masters_certificate_about_to_expire_is_issued_again_at_its_start(tmp_path):
    data_dir = str(tmp_path / "data")
    ca = files.ensure_master_files(data_dir)
    path = os.path.join(data_dir, files.MASTER_CERT)
    _short_lived(ca, path, days=10)
    files.ensure_master_files(data_dir)
    assert tls.read_certificate(path).not_valid_after_utc == tls.expires(ca.pem())  # renewed (to its CA's end)
    _short_lived(ca, path, days=60)  # not yet due: kept
    files.ensure_master_files(data_dir)
    assert tls.read_certificate(path).not_valid_after_utc < NOW + datetime.timedelta(days=61)


@pytest_twisted.ensureDeferred
async def test_a_client_given_an_expired_ca_says_it_expired(deployment, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "PaperTrader CA")])
    old = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
           .serial_number(x509.random_serial_number())
           .not_valid_before(NOW - datetime.timedelta(days=3660)).not_valid_after(NOW - datetime.timedelta(days=10))
           .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
           .sign(key, hashes.SHA256()))
    path = tmp_path / "expired-ca.pem"
    path.write_bytes(old.public_bytes(serialization.Encoding.PEM))
    status, out, err = await deployment.cli("--ca-file", str(path), "workers")
    answer = json.loads(out)
    assert (status, answer["error"]) == (1, "bad_certificate")
    day = (NOW - datetime.timedelta(days=10)).date().isoformat()
    assert f"CA certificate (the CA file given: --ca-file or PAPERTRADER_CA) expired on {day}" in answer["message"]


def test_a_deployment_moved_to_a_new_ca_gets_certificates_of_it(tmp_path):
    """The README's move to a new CA: its files moved aside, the master's start makes a new CA and a master
    certificate of it; registering a worker again gives its bundle the new CA file and a certificate of it
    (its key, and so its registration, kept)."""
    data_dir = str(tmp_path / "data")
    old = files.ensure_master_files(data_dir)
    bundle = str(tmp_path / "w1")
    armor = files.make_worker_bundle(data_dir, "w1", ["w1.example.com"], bundle)
    for name in (tls.CA_CERT, tls.CA_KEY):
        os.rename(os.path.join(data_dir, name), os.path.join(data_dir, name + ".old"))
    new = files.ensure_master_files(data_dir)
    master = tls.read_certificate(os.path.join(data_dir, files.MASTER_CERT))
    assert new.pem() != old.pem() and tls.issued_by(master, new)
    assert files.make_worker_bundle(data_dir, "w1", ["w1.example.com"], bundle) == armor  # the same key
    assert open(os.path.join(bundle, tls.CA_CERT), "rb").read() == new.pem()
    worker = os.path.join(bundle, files.WORKER_CERT)
    cert = tls.read_certificate(worker)
    assert tls.issued_by(cert, new) and not tls.issued_by(cert, old)
    assert "w1.example.com" in tls.certificate_hostnames(worker)
