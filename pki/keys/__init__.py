"""Key stores behind one seam: CA code asks for a signer by key URI and never learns where the key lives.

URI schemes: ``file:`` (encrypted PKCS#8 on disk, :mod:`pki.keys.file`), ``pkcs11:`` (HSM, registered by its own
module). A signer is a cryptography private-key object (or a subclass whose ``sign`` calls out to a token), so
cryptography's certificate, CRL and OCSP builders accept it unchanged.
"""

from pki.keys.base import KeyAlgorithm, KeyManager, KeyStore, Signer, public_key_algorithm

__all__ = ["KeyAlgorithm", "KeyManager", "KeyStore", "Signer", "public_key_algorithm"]
