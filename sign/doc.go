// Package sign signs and verifies OCI manifests in cosign's format, offline: with a key pair,
// without a transparency log or a certificate authority.
//
// A signature is a simple-signing JSON payload naming the manifest digest, signed with ECDSA
// P-256 over its SHA-256 and stored as one layer (media type
// application/vnd.dev.cosign.simplesigning.v1+json, base64 signature in the layer annotation
// dev.cosignproject.cosign/signature) of an OCI image tagged sha256-<hex>.sig in the same
// repository as the signed manifest. Each new signature appends a layer; a signature by the
// same key over the same payload is not added twice. What Sign writes, `cosign verify --key
// --insecure-ignore-tlog` accepts; what `cosign sign --key --tlog-upload=false` writes, Verify
// accepts.
//
// Keys are read from the files `cosign generate-key-pair` writes (an encrypted PKCS#8 key in
// a PEM block "ENCRYPTED SIGSTORE PRIVATE KEY" or "ENCRYPTED COSIGN PRIVATE KEY": scrypt and
// NaCl secretbox, as go-securesystemslib's encrypted package does) or from plain PEM ECDSA
// P-256 keys ("EC PRIVATE KEY", "PRIVATE KEY"); public keys are PEM "PUBLIC KEY" (PKIX).
package sign
