// Package sshpolicy is what moat's SSH servers (the bastion and each
// instance's endpoint) share: the algorithms they accept, the set of
// authorized keys, the permission extension that carries the verified
// key's fingerprint, and the known_hosts line of a host key.
package sshpolicy

import (
	"slices"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Modern returns the algorithm settings moat's SSH servers use: post-quantum
// hybrid and curve25519 key exchange, AEAD ciphers, SHA-2 encrypt-then-MAC;
// no NIST curves, no SHA-1, no CBC. mlkem768x25519-sha256 is offered when
// the library supports it (OpenSSH 9.9+ picks it; older clients use
// curve25519-sha256).
func Modern() ssh.Config {
	supported := ssh.SupportedAlgorithms()
	var kex []string
	for _, k := range []string{ssh.KeyExchangeMLKEM768X25519, ssh.KeyExchangeCurve25519} {
		if slices.Contains(supported.KeyExchanges, k) {
			kex = append(kex, k)
		}
	}
	return ssh.Config{
		KeyExchanges: kex,
		Ciphers:      []string{ssh.CipherChaCha20Poly1305, ssh.CipherAES256GCM, ssh.CipherAES128GCM},
		MACs:         []string{ssh.HMACSHA256ETM, ssh.HMACSHA512ETM},
	}
}

// ClientKeyAlgorithms are the public key signature algorithms accepted for
// user authentication: ed25519 and RSA with SHA-2 (no ssh-rsa/SHA-1, no
// NIST ECDSA).
var ClientKeyAlgorithms = []string{ssh.KeyAlgoED25519, ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256}

// KnownHostsLine is a known_hosts line for key at address (host:port);
// port 22 is written as the bare host, as OpenSSH does.
func KnownHostsLine(address string, key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(address)}, key)
}

// ExtFingerprint is the ssh.Permissions.Extensions key holding the SHA256
// fingerprint of the key the client proved it holds.
const ExtFingerprint = "moat-verified-key-fingerprint"
