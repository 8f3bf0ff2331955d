package bastion_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moat-dev/moat/internal/bastion"
	"github.com/moat-dev/moat/internal/sshpolicy"
	"golang.org/x/crypto/ssh"
)

// TestKeepaliveClosesDeadClients freezes the path from the bastion to an
// authenticated client and expects the bastion to drop it.
func TestKeepaliveClosesDeadClients(t *testing.T) {
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := ssh.NewSignerFromKey(hostPriv)
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := ssh.NewSignerFromKey(userPriv)
	audit := &syncBuffer{}
	b, err := bastion.New(bastion.Config{
		HostKey: host, AuthorizedKeys: sshpolicy.NewKeySet(user.PublicKey()),
		Dial:              func(context.Context, string, string) (net.Conn, error) { return nil, io.EOF },
		Audit:             audit,
		KeepAliveInterval: 50 * time.Millisecond, KeepAliveCountMax: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	bln := listen(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.Serve(ctx, bln) }()

	// A proxy whose bastion-to-client direction can be frozen.
	pln := listen(t, "127.0.0.1:0")
	defer pln.Close()
	var frozen atomic.Bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := pln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		s, err := net.Dial("tcp", bln.Addr().String())
		if err != nil {
			return
		}
		defer s.Close()
		stop := context.AfterFunc(ctx, func() { c.Close(); s.Close() })
		defer stop()
		go func() { _, _ = io.Copy(s, c) }()
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if err != nil {
				return
			}
			if frozen.Load() {
				continue // the client never hears from the bastion again
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	}()
	cl, err := ssh.Dial("tcp", pln.Addr().String(), &ssh.ClientConfig{
		User: "ec2-user", Auth: []ssh.AuthMethod{ssh.PublicKeys(user)},
		HostKeyCallback: ssh.FixedHostKey(host.PublicKey()), Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	audit.waitAudit(t, map[string]string{"msg": "login"})
	frozen.Store(true)
	audit.waitAudit(t, map[string]string{"msg": "disconnect", "reason": "no keepalive reply"})
}

func TestAllowedSources(t *testing.T) {
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := ssh.NewSignerFromKey(hostPriv)
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := ssh.NewSignerFromKey(userPriv)
	audit := &syncBuffer{}
	b, err := bastion.New(bastion.Config{
		HostKey: host, AuthorizedKeys: sshpolicy.NewKeySet(user.PublicKey()),
		Dial:           func(context.Context, string, string) (net.Conn, error) { return nil, io.EOF },
		Audit:          audit,
		AllowedSources: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t, "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); _ = b.Serve(ctx, ln) }()
	cc := &ssh.ClientConfig{User: "ec2-user", Auth: []ssh.AuthMethod{ssh.PublicKeys(user)},
		HostKeyCallback: ssh.FixedHostKey(host.PublicKey()), Timeout: 5 * time.Second}
	for _, tc := range []struct {
		from string
		ok   bool
	}{{"127.0.0.1", true}, {"127.0.0.9", false}} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(tc.from)}}
		nc, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c, chans, reqs, err := ssh.NewClientConn(nc, ln.Addr().String(), cc)
		if (err == nil) != tc.ok {
			t.Errorf("from %s: err %v, want ok=%v", tc.from, err, tc.ok)
		}
		if err == nil {
			ssh.NewClient(c, chans, reqs).Close()
		} else {
			nc.Close()
		}
	}
	audit.waitAudit(t, map[string]string{"msg": "connection_refused", "source": "127.0.0.9:", "reason": "allowed CIDRs"})
}
