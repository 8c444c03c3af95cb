"""pyca `cryptography` as a CMS peer for tests/cms_pyca.rs (a strict-DER parser: rust-asn1).

    python peer.py KEYDIR JOBS

KEYDIR holds WHO.key (PEM private key) and WHO.crt (PEM certificate) for every identity a job
names. JOBS has one tab-separated job per line; one tab-separated result line is printed for
each, in order:

    open  FORM MSG WHO        -> open  MSG WHO SHA256-of-plaintext    (FORM: der | smime)
    order MSG                 -> order MSG KIND N                     (KIND: enveloped | auth-enveloped)
    seal  OUT FORM BITS BINARY PLAINTEXT WHO[,WHO...]  -> sealed OUT
                                 (BITS: 128 | 256; BINARY: 1 = PKCS7Options.Binary)

A job that fails prints `error REASON` (the exception, on one line) and the next jobs go on.

`open` is pkcs7_decrypt_der / pkcs7_decrypt_smime (EnvelopedData, AES-CBC, RSA PKCS#1 v1.5,
issuerAndSerialNumber). `order` parses the ContentInfo and the (Auth)EnvelopedData with
pyca's declarative ASN.1 (cryptography >= 47), RecipientInfos as SET OF TLV: rust-asn1
refuses a SET OF whose components are not in DER order (InvalidSetOrdering), for GCM
AuthEnvelopedData too, which pyca cannot decrypt. `seal` is PKCS7EnvelopeBuilder.
"""

import hashlib
import os
import sys
from typing import Annotated

from cryptography import x509
from cryptography.hazmat import asn1
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

ID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
ID_CT_AUTH_ENVELOPED_DATA = "1.2.840.113549.1.9.16.1.23"


@asn1.sequence
class ContentInfo:
    content_type: x509.ObjectIdentifier
    content: Annotated[asn1.TLV, asn1.Explicit(0)]


# RFC 5652 6.1 / RFC 5083 2.1, as sipsd writes them: no originatorInfo, no attributes.
@asn1.sequence
class EnvelopedData:
    version: int
    recipient_infos: asn1.SetOf[asn1.TLV]
    encrypted_content_info: asn1.TLV


@asn1.sequence
class AuthEnvelopedData:
    version: int
    recipient_infos: asn1.SetOf[asn1.TLV]
    auth_encrypted_content_info: asn1.TLV
    mac: bytes


class Identities:
    def __init__(self, keydir):
        self.keydir = keydir
        self.cache = {}

    def get(self, who):
        if who not in self.cache:
            base = os.path.join(self.keydir, who)
            with open(base + ".crt", "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            with open(base + ".key", "rb") as f:
                key = serialization.load_pem_private_key(f.read(), None)
            self.cache[who] = (cert, key)
        return self.cache[who]


def do_open(ids, form, msg, who):
    cert, key = ids.get(who)
    with open(msg, "rb") as f:
        data = f.read()
    if form == "der":
        plain = pkcs7.pkcs7_decrypt_der(data, cert, key, [])
    elif form == "smime":
        plain = pkcs7.pkcs7_decrypt_smime(data, cert, key, [])
    else:
        raise ValueError(f"unknown form {form}")
    return ["open", msg, who, hashlib.sha256(plain).hexdigest()]


def do_order(msg):
    with open(msg, "rb") as f:
        ci = asn1.decode_der(ContentInfo, f.read())
    oid = ci.content_type.dotted_string
    if oid == ID_ENVELOPED_DATA:
        kind, data = "enveloped", ci.content.parse(EnvelopedData)
    elif oid == ID_CT_AUTH_ENVELOPED_DATA:
        kind, data = "auth-enveloped", ci.content.parse(AuthEnvelopedData)
    else:
        raise ValueError(f"content type {oid}")
    return ["order", msg, kind, str(len(data.recipient_infos.as_list()))]


def do_seal(ids, out, form, bits, binary, plaintext, whos):
    with open(plaintext, "rb") as f:
        data = f.read()
    alg = {"128": algorithms.AES128, "256": algorithms.AES256}[bits]
    builder = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(data)
        .set_content_encryption_algorithm(alg)
    )
    for who in whos.split(","):
        builder = builder.add_recipient(ids.get(who)[0])
    encoding = {
        "der": serialization.Encoding.DER,
        "smime": serialization.Encoding.SMIME,
    }[form]
    options = [pkcs7.PKCS7Options.Binary] if binary == "1" else []
    with open(out, "wb") as f:
        f.write(builder.encrypt(encoding, options))
    return ["sealed", out]


def main():
    keydir, jobs = sys.argv[1], sys.argv[2]
    ids = Identities(keydir)
    with open(jobs) as f:
        lines = [line.rstrip("\n") for line in f if line.strip()]
    for line in lines:
        job = line.split("\t")
        try:
            if job[0] == "open":
                res = do_open(ids, *job[1:])
            elif job[0] == "order":
                res = do_order(*job[1:])
            elif job[0] == "seal":
                res = do_seal(ids, *job[1:])
            else:
                raise ValueError(f"unknown job {job[0]}")
        except Exception as e:  # reported to the Rust side, which fails the test
            reason = repr(e).replace("\t", " ").replace("\n", " ")
            res = ["error", reason]
        print("\t".join(res), flush=True)


if __name__ == "__main__":
    main()
