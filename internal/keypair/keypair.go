// Package keypair creates, imports, fingerprints and stores SSH key pairs
// the way Amazon EC2 does.
//
// A key pair is an ed25519 or RSA key. When moat creates one it writes the
// private key exactly once (mode 0600) and keeps only the public half;
// when the user imports one, moat never sees a private key. Fingerprints
// follow EC2's rules, which depend on the key type and on how the key
// pair came to be:
//
//   - ed25519 (created or imported): SHA-256 of the public key blob,
//     base64 without padding, exactly as `ssh-keygen -l` prints it
//     ("SHA256:...").
//   - RSA imported: MD5 of the public key blob, colon-separated hex, as
//     `ssh-keygen -l -E md5` prints it (without its "MD5:" prefix).
//   - RSA created by moat: SHA-1 of the DER-encoded PKCS#8 private key,
//     colon-separated hex (what `openssl pkcs8 -topk8 -nocrypt -outform
//     DER | openssl sha1 -c` prints).
package keypair

import (
	"crypto"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Type is a key algorithm.
type Type string

// Supported key types.
const (
	ED25519 Type = "ed25519"
	RSA     Type = "rsa"
)

// RSABits is the size of RSA keys moat creates (EC2 creates 2048-bit keys).
const RSABits = 2048

// ParseType parses a key type name; the empty string means ed25519.
func ParseType(s string) (Type, error) {
	switch strings.ToLower(s) {
	case "", "ed25519":
		return ED25519, nil
	case "rsa":
		return RSA, nil
	}
	return "", fmt.Errorf("unknown key type %q: use ed25519 or rsa", s)
}

// Generated is a freshly created key pair: the public key, its EC2
// fingerprint and the private key encoded for a .pem file.
type Generated struct {
	Type        Type
	PublicKey   ssh.PublicKey
	Fingerprint string
	// PrivatePEM is the private key as a PEM file OpenSSH reads: an
	// "OPENSSH PRIVATE KEY" for ed25519, a PKCS#1 "RSA PRIVATE KEY" for
	// RSA (the format EC2 hands out).
	PrivatePEM []byte
}

// Generate creates a new key pair of type t.
func Generate(t Type) (*Generated, error) {
	switch t {
	case ED25519:
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		sshPub, err := ssh.NewPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		block, err := ssh.MarshalPrivateKey(priv, "")
		if err != nil {
			return nil, fmt.Errorf("encode ed25519 private key: %w", err)
		}
		return &Generated{Type: ED25519, PublicKey: sshPub, Fingerprint: SHA256(sshPub), PrivatePEM: pem.EncodeToMemory(block)}, nil
	case RSA:
		priv, err := rsa.GenerateKey(rand.Reader, RSABits)
		if err != nil {
			return nil, fmt.Errorf("generate rsa key: %w", err)
		}
		sshPub, err := ssh.NewPublicKey(&priv.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("generate rsa key: %w", err)
		}
		fp, err := PKCS8SHA1(priv)
		if err != nil {
			return nil, err
		}
		p := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})
		return &Generated{Type: RSA, PublicKey: sshPub, Fingerprint: fp, PrivatePEM: p}, nil
	}
	return nil, fmt.Errorf("generate key: unknown type %q", t)
}

// ParsePublicKey parses one OpenSSH public key (an authorized_keys line,
// as in a .pub file) and returns it with its type and comment. Only
// ed25519 and RSA (at least 2048 bits) keys are accepted, as in EC2.
func ParsePublicKey(data []byte) (ssh.PublicKey, Type, string, error) {
	pub, comment, _, rest, err := ssh.ParseAuthorizedKey(data)
	if err != nil {
		return nil, "", "", fmt.Errorf("parse public key: %w", err)
	}
	if len(strings.TrimSpace(string(rest))) > 0 {
		return nil, "", "", errors.New("parse public key: more than one key in the file")
	}
	t, err := typeOf(pub)
	if err != nil {
		return nil, "", "", err
	}
	return pub, t, comment, nil
}

func typeOf(pub ssh.PublicKey) (Type, error) {
	switch pub.Type() {
	case ssh.KeyAlgoED25519:
		return ED25519, nil
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return "", errors.New("unsupported rsa key")
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok {
			return "", errors.New("unsupported rsa key")
		}
		if rk.N.BitLen() < 2048 {
			return "", fmt.Errorf("rsa key too short: %d bits, need at least 2048", rk.N.BitLen())
		}
		return RSA, nil
	}
	return "", fmt.Errorf("unsupported key type %s: use ed25519 or rsa", pub.Type())
}

// ImportedFingerprint is EC2's fingerprint of an imported public key:
// SHA-256 for ed25519, MD5 for RSA.
func ImportedFingerprint(pub ssh.PublicKey) string {
	if pub.Type() == ssh.KeyAlgoED25519 {
		return SHA256(pub)
	}
	return MD5(pub)
}

// SHA256 is the SHA-256 fingerprint as `ssh-keygen -l` prints it
// ("SHA256:" and unpadded base64).
func SHA256(pub ssh.PublicKey) string { return ssh.FingerprintSHA256(pub) }

// MD5 is the MD5 fingerprint of the public key blob in colon hex, as
// `ssh-keygen -l -E md5` prints it after "MD5:".
func MD5(pub ssh.PublicKey) string {
	sum := md5.Sum(pub.Marshal())
	return colonHex(sum[:])
}

// PKCS8SHA1 is EC2's fingerprint of an RSA key pair it created: the SHA-1
// of the private key's PKCS#8 DER encoding, in colon hex.
func PKCS8SHA1(priv crypto.PrivateKey) (string, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode private key as pkcs#8: %w", err)
	}
	sum := sha1.Sum(der)
	return colonHex(sum[:]), nil
}

func colonHex(b []byte) string {
	h := hex.EncodeToString(b)
	var sb strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			sb.WriteByte(':')
		}
		sb.WriteString(h[i : i+2])
	}
	return sb.String()
}

// AuthorizedKey formats pub as one authorized_keys line with comment.
func AuthorizedKey(pub ssh.PublicKey, comment string) string {
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	if comment != "" {
		line += " " + comment
	}
	return line
}
