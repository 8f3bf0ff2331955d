package bastion_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/bastion"
	"github.com/moat-dev/moat/internal/sshpolicy"
	"golang.org/x/crypto/ssh"
)

// benchBastion starts a bastion on loopback that forwards to loopback only
// and returns a client config for it.
func benchBastion(b *testing.B) (string, *ssh.ClientConfig) {
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := ssh.NewSignerFromKey(hostPriv)
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := ssh.NewSignerFromKey(userPriv)
	var d net.Dialer
	srv, err := bastion.New(bastion.Config{
		HostKey: host, AuthorizedKeys: sshpolicy.NewKeySet(user.PublicKey()),
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); wg.Wait() })
	return ln.Addr().String(), &ssh.ClientConfig{
		User: "ec2-user", Auth: []ssh.AuthMethod{ssh.PublicKeys(user)},
		HostKeyCallback: ssh.FixedHostKey(host.PublicKey()), Timeout: 5 * time.Second,
	}
}

// BenchmarkLogin measures a full connection: key exchange, public key
// authentication, close.
func BenchmarkLogin(b *testing.B) {
	addr, cc := benchBastion(b)
	for b.Loop() {
		c, err := ssh.Dial("tcp", addr, cc)
		if err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
}

// BenchmarkForward measures throughput of one forwarded connection to a
// loopback sink, 1 MiB per iteration.
func BenchmarkForward(b *testing.B) {
	addr, cc := benchBastion(b)
	sink, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	c, err := ssh.Dial("tcp", addr, cc)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	conn, err := c.Dial("tcp", sink.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if _, err := conn.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}
