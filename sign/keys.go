package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
)

// PEM block types of the keys Strata reads and writes.
const (
	// PEMEncryptedSigstore is the block `cosign generate-key-pair` writes (cosign ≥ 2.0).
	PEMEncryptedSigstore = "ENCRYPTED SIGSTORE PRIVATE KEY"
	// PEMEncryptedCosign is the block older cosign versions wrote; still read by cosign.
	PEMEncryptedCosign = "ENCRYPTED COSIGN PRIVATE KEY"
	pemECPrivate       = "EC PRIVATE KEY"
	pemPKCS8           = "PRIVATE KEY"
	pemPublic          = "PUBLIC KEY"
)

// ErrPasswordRequired is returned for an encrypted key read without a password.
var ErrPasswordRequired = errors.New("the key is encrypted and no password was given")

// IsEncrypted reports whether pemBytes hold a cosign-encrypted private key.
func IsEncrypted(pemBytes []byte) bool {
	b, _ := pem.Decode(pemBytes)
	return b != nil && (b.Type == PEMEncryptedSigstore || b.Type == PEMEncryptedCosign)
}

// ParsePrivateKey reads an ECDSA P-256 private key: a cosign-encrypted key (decrypted with
// password; nil password means none was given) or a plain PEM "EC PRIVATE KEY" / "PRIVATE KEY".
func ParsePrivateKey(pemBytes, password []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, errors.New("no PEM block found (want a cosign key or a PEM ECDSA P-256 private key)")
	}
	var key any
	var err error
	switch b.Type {
	case PEMEncryptedSigstore, PEMEncryptedCosign:
		if password == nil {
			return nil, ErrPasswordRequired
		}
		der, derr := encrypted.Decrypt(b.Bytes, password)
		if derr != nil {
			return nil, fmt.Errorf("decrypt %s (wrong password?): %w", b.Type, derr)
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
	case pemECPrivate:
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case pemPKCS8:
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key (want %q, %q, %q or %q)",
			b.Type, PEMEncryptedSigstore, PEMEncryptedCosign, pemECPrivate, pemPKCS8)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", b.Type, err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s holds a %T, want an ECDSA P-256 key", b.Type, key)
	}
	if ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%s holds an ECDSA key on %s, want P-256", b.Type, ec.Curve.Params().Name)
	}
	return ec, nil
}

// EnvKeyPrefix makes a key argument name an environment variable holding the PEM instead of a
// file, as cosign's "env://COSIGN_PRIVATE_KEY": "env://NAME".
const EnvKeyPrefix = "env://"

// readKey reads a key file, or the variable an "env://NAME" source names.
func readKey(source string) ([]byte, error) {
	if name, ok := strings.CutPrefix(source, EnvKeyPrefix); ok {
		v, set := os.LookupEnv(name)
		if !set || v == "" {
			return nil, fmt.Errorf("environment variable %s is not set", name)
		}
		return []byte(v), nil
	}
	return os.ReadFile(source)
}

// LoadPrivateKey reads ParsePrivateKey's formats from a file or an "env://NAME" variable.
func LoadPrivateKey(source string, password []byte) (*ecdsa.PrivateKey, error) {
	b, err := readKey(source)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	file := source
	k, err := ParsePrivateKey(b, password)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", file, err)
	}
	return k, nil
}

// ParsePublicKey reads a PEM "PUBLIC KEY" (PKIX) holding an ECDSA P-256 key, as cosign.pub.
func ParsePublicKey(pemBytes []byte) (*ecdsa.PublicKey, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, errors.New("no PEM block found (want a PEM \"PUBLIC KEY\" such as cosign.pub)")
	}
	if b.Type != pemPublic {
		return nil, fmt.Errorf("PEM block %q is not a public key (want %q)", b.Type, pemPublic)
	}
	key, err := x509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	ec, ok := key.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("public key is a %T, want an ECDSA P-256 key", key)
	}
	if ec.Curve != elliptic.P256() {
		return nil, fmt.Errorf("public key is on %s, want P-256", ec.Curve.Params().Name)
	}
	return ec, nil
}

// LoadPublicKey reads ParsePublicKey's format from a file or an "env://NAME" variable.
func LoadPublicKey(source string) (*ecdsa.PublicKey, error) {
	b, err := readKey(source)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	file := source
	k, err := ParsePublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", file, err)
	}
	return k, nil
}

// MarshalPublicKey encodes pub as PEM "PUBLIC KEY", the format of cosign.pub.
func MarshalPublicKey(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// MarshalPrivateKey encodes key as cosign does: PKCS#8, encrypted with password (scrypt +
// secretbox) in a PEM "ENCRYPTED SIGSTORE PRIVATE KEY". A nil password writes a plain PEM
// "PRIVATE KEY" instead.
func MarshalPrivateKey(key *ecdsa.PrivateKey, password []byte) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	if password == nil {
		return pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: der}), nil
	}
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: PEMEncryptedSigstore, Bytes: enc}), nil
}

// GenerateKey makes a new ECDSA P-256 key, the kind `cosign generate-key-pair` makes.
func GenerateKey() (*ecdsa.PrivateKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// KeyID names a public key in messages: "sha256:" and the first 16 hex digits of the SHA-256
// of its PKIX encoding.
func KeyID(pub *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "invalid-key"
	}
	s := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(s[:8])
}
