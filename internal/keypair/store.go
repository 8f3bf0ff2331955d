package keypair

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/moat-dev/moat/internal/statedir"
)

// ErrNotFound is returned for a key pair that is not in the store.
var ErrNotFound = errors.New("no such key pair")

// ErrExists is returned when creating or importing a name already taken.
var ErrExists = errors.New("key pair already exists")

// KeyPair is the stored, public description of a key pair.
type KeyPair struct {
	Name string `json:"name"`
	// ID looks like EC2's: key-0123456789abcdef0.
	ID          string `json:"id"`
	Type        Type   `json:"type"`
	Fingerprint string `json:"fingerprint"`
	// PublicKey is an authorized_keys line.
	PublicKey string `json:"publicKey"`
	// Imported is true for a key pair made from a user's public key.
	Imported bool `json:"imported"`
	// PrivateKeyPath is where moat wrote the private key of a key pair it
	// created (empty for imported ones). moat never rewrites it.
	PrivateKeyPath string    `json:"privateKeyPath,omitempty"`
	CreatedAt      time.Time `json:"createdAt"`
}

// SSHPublicKey parses the stored public key.
func (k *KeyPair) SSHPublicKey() (ssh.PublicKey, error) {
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("key pair %s: stored public key: %w", k.Name, err)
	}
	return pub, nil
}

// DefaultDir is where the key pair store lives: <statedir.Home>/keypairs.
func DefaultDir() string { return filepath.Join(statedir.Home(), "keypairs") }

// DefaultPrivateKeyPath is where a created key pair's private key goes
// when no path is given: <statedir.Home>/keys/<name>.pem.
func DefaultPrivateKeyPath(name string) string {
	return filepath.Join(statedir.Home(), "keys", name+".pem")
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$`)

// ValidateName checks a key pair name: 1-255 characters, letters, digits,
// '.', '_' and '-', not starting with a punctuation character.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("invalid key pair name %q: use 1-255 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Store keeps key pairs as one JSON file each in a directory.
type Store struct {
	dir string
	now func() time.Time
}

// Open opens (creating it, mode 0700) the store in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open key pair store: %w", err)
	}
	return &Store{dir: dir, now: time.Now}, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) path(name string) string { return filepath.Join(s.dir, name+".json") }

// Create generates a key pair of type t named name, writes its private key
// to privPath (DefaultPrivateKeyPath(name) when empty) with mode 0600 and
// stores the public half. It never overwrites an existing file.
func (s *Store) Create(name string, t Type, privPath string) (*KeyPair, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if _, err := os.Stat(s.path(name)); err == nil {
		// The name is the conflict to report, not the key file it left.
		return nil, fmt.Errorf("create key pair %s: %w", name, ErrExists)
	}
	if privPath == "" {
		privPath = DefaultPrivateKeyPath(name)
	}
	abs, err := filepath.Abs(privPath)
	if err != nil {
		return nil, fmt.Errorf("create key pair %s: %w", name, err)
	}
	if _, err := os.Lstat(abs); err == nil {
		return nil, fmt.Errorf("create key pair %s: private key file %s already exists: choose another path or remove it", name, abs)
	}
	g, err := Generate(t)
	if err != nil {
		return nil, fmt.Errorf("create key pair %s: %w", name, err)
	}
	kp := &KeyPair{
		Name: name, ID: newID(), Type: g.Type, Fingerprint: g.Fingerprint,
		PublicKey: AuthorizedKey(g.PublicKey, name), PrivateKeyPath: abs, CreatedAt: s.now().UTC(),
	}
	if err := s.put(kp); err != nil {
		return nil, fmt.Errorf("create key pair %s: %w", name, err)
	}
	if err := writeOnce(abs, g.PrivatePEM); err != nil {
		_ = os.Remove(s.path(name))
		return nil, fmt.Errorf("create key pair %s: write private key: %w", name, err)
	}
	return kp, nil
}

// Import stores the OpenSSH public key in pubData (the contents of a .pub
// file) as key pair name.
func (s *Store) Import(name string, pubData []byte) (*KeyPair, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	pub, t, comment, err := ParsePublicKey(pubData)
	if err != nil {
		return nil, fmt.Errorf("import key pair %s: %w", name, err)
	}
	kp := &KeyPair{
		Name: name, ID: newID(), Type: t, Fingerprint: ImportedFingerprint(pub),
		PublicKey: AuthorizedKey(pub, comment), Imported: true, CreatedAt: s.now().UTC(),
	}
	if err := s.put(kp); err != nil {
		return nil, fmt.Errorf("import key pair %s: %w", name, err)
	}
	return kp, nil
}

// put writes kp's metadata atomically, failing with ErrExists when the
// name is taken (hard-linking a complete temporary file into place is
// both atomic and exclusive).
func (s *Store) put(kp *KeyPair) error {
	data, err := json.MarshalIndent(kp, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(s.dir, ".tmp-"+kp.Name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), s.path(kp.Name)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return ErrExists
		}
		return err
	}
	return nil
}

func writeOnce(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// Get returns key pair name, or an error wrapping ErrNotFound.
func (s *Store) Get(name string) (*KeyPair, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("key pair %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("key pair %s: %w", name, err)
	}
	var kp KeyPair
	if err := json.Unmarshal(data, &kp); err != nil {
		return nil, fmt.Errorf("key pair %s: corrupt %s: %w", name, s.path(name), err)
	}
	return &kp, nil
}

// List returns all key pairs sorted by name.
func (s *Store) List() ([]KeyPair, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list key pairs: %w", err)
	}
	out := []KeyPair{}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") {
			continue
		}
		kp, err := s.Get(strings.TrimSuffix(n, ".json"))
		if err != nil {
			return nil, fmt.Errorf("list key pairs: %w", err)
		}
		out = append(out, *kp)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Delete removes key pair name from the store. As in EC2, the private key
// file (if moat wrote one) is left alone: it is the user's.
func (s *Store) Delete(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	err := os.Remove(s.path(name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete key pair %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete key pair %s: %w", name, err)
	}
	return nil
}

// PublicKeys returns the public keys of the named key pairs, for a server's
// authorized keys.
func (s *Store) PublicKeys(names ...string) ([]ssh.PublicKey, error) {
	var out []ssh.PublicKey
	for _, n := range names {
		kp, err := s.Get(n)
		if err != nil {
			return nil, err
		}
		pub, err := kp.SSHPublicKey()
		if err != nil {
			return nil, err
		}
		out = append(out, pub)
	}
	return out, nil
}

func newID() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return "key-" + hex.EncodeToString(b[:])[:17]
}

// Ensure returns key pair name, creating it when missing: imported from
// the OpenSSH public key file pubKeyFile when that is set, otherwise
// generated with type t (its private key going to the default path). An
// existing key pair is returned as is, so `moat up` can call Ensure for
// every key pair the stack file names. created reports whether it made one.
func (s *Store) Ensure(name string, t Type, pubKeyFile string) (kp *KeyPair, created bool, err error) {
	kp, err = s.Get(name)
	if err == nil {
		return kp, false, nil
	}
	if !errors.Is(err, ErrNotFound) {
		return nil, false, err
	}
	if pubKeyFile != "" {
		data, rerr := os.ReadFile(pubKeyFile)
		if rerr != nil {
			return nil, false, fmt.Errorf("import key pair %s: %w", name, rerr)
		}
		kp, err = s.Import(name, data)
	} else {
		kp, err = s.Create(name, t, "")
	}
	if errors.Is(err, ErrExists) {
		// Another process made it first.
		kp, err = s.Get(name)
		return kp, false, err
	}
	return kp, err == nil, err
}
