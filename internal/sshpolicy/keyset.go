package sshpolicy

import (
	"sync"

	"golang.org/x/crypto/ssh"
)

// KeySet is a set of authorized public keys that can be replaced while a
// server runs (for instance when the stack's key pairs change). It is safe
// for concurrent use.
type KeySet struct {
	mu   sync.RWMutex
	keys map[string]string // wire-format key -> SHA256 fingerprint
}

// NewKeySet returns a KeySet holding keys.
func NewKeySet(keys ...ssh.PublicKey) *KeySet {
	s := &KeySet{}
	s.Set(keys...)
	return s
}

// Set replaces the authorized keys.
func (s *KeySet) Set(keys ...ssh.PublicKey) {
	m := make(map[string]string, len(keys))
	for _, k := range keys {
		m[string(k.Marshal())] = ssh.FingerprintSHA256(k)
	}
	s.mu.Lock()
	s.keys = m
	s.mu.Unlock()
}

// Contains reports whether key is authorized.
func (s *KeySet) Contains(key ssh.PublicKey) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.keys[string(key.Marshal())]
	return ok
}

// ContainsFingerprint reports whether a key with this SHA256 fingerprint
// is authorized.
func (s *KeySet) ContainsFingerprint(fp string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, f := range s.keys {
		if f == fp {
			return true
		}
	}
	return false
}

// Len is the number of authorized keys.
func (s *KeySet) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.keys)
}
