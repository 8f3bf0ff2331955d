package keypair

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/crypto/ssh"
)

// LoadOrCreateHostKey returns the ed25519 SSH host key stored at path,
// creating it (mode 0600, parent directories 0700) the first time, so a
// server keeps the same identity across restarts and clients'
// known_hosts entries stay valid.
func LoadOrCreateHostKey(path string) (ssh.Signer, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, fmt.Errorf("create host key %s: %w", path, gerr)
		}
		block, merr := ssh.MarshalPrivateKey(priv, "moat host key")
		if merr != nil {
			return nil, fmt.Errorf("create host key %s: %w", path, merr)
		}
		werr := writeOnce(path, pem.EncodeToMemory(block))
		if werr != nil && !errors.Is(werr, fs.ErrExist) {
			return nil, fmt.Errorf("create host key %s: %w", path, werr)
		}
		// Read back what is on disk: a concurrent creator may have won.
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("read host key %s: %w", path, err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("read host key %s: %w", path, err)
	}
	if signer.PublicKey().Type() != ssh.KeyAlgoED25519 {
		return nil, fmt.Errorf("read host key %s: type %s, want ssh-ed25519", path, signer.PublicKey().Type())
	}
	return signer, nil
}
