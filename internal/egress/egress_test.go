package egress

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

func TestDestination(t *testing.T) {
	vpc := netip.MustParsePrefix("10.42.0.0/16")
	for _, tc := range []struct {
		dst, want string // want "" = refused
	}{
		{"198.18.0.2:8080", "127.0.0.1:8080"}, // the host
		{"93.184.215.14:443", "93.184.215.14:443"},
		{"1.1.1.1:53", "1.1.1.1:53"},
		{"10.42.1.5:8000", ""},     // the VPC itself
		{"10.9.9.9:80", ""},        // RFC 1918
		{"172.20.0.1:80", ""},      // RFC 1918
		{"192.168.1.1:80", ""},     // RFC 1918
		{"127.0.0.1:80", ""},       // loopback
		{"169.254.169.254:80", ""}, // link-local (metadata)
		{"198.18.0.1:80", ""},      // moat's uplink
		{"224.0.0.1:80", ""},       // multicast
		{"0.0.0.0:80", ""},
		{"[2001:db8::1]:80", ""}, // no IPv6
	} {
		got, err := Destination(netip.MustParseAddrPort(tc.dst), vpc)
		if tc.want == "" {
			if !errors.Is(err, ErrRefused) {
				t.Errorf("Destination(%s) = %v, %v; want refused", tc.dst, got, err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("Destination(%s) = %v, %v; want %s", tc.dst, got, err, tc.want)
		}
	}
}

func query(t *testing.T, name string, typ dnsmessage.Type) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 77, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: typ, Class: dnsmessage.ClassINET})
	q, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestAnswer(t *testing.T) {
	// A stand-in for the host's resolver: tests never query real DNS.
	lookup := func(_ context.Context, name string) ([]netip.Addr, error) {
		switch name {
		case "example.test":
			return []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("2001:db8::7")}, nil
		case "down.test":
			return nil, errors.New("timeout")
		case "many.test":
			var out []netip.Addr
			for i := range 20 {
				out = append(out, netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}))
			}
			return out, nil
		}
		return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	for _, tc := range []struct {
		name  string
		typ   dnsmessage.Type
		rcode dnsmessage.RCode
		want  []string
	}{
		{"host.moat.internal.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"198.18.0.2"}},
		{"HOST.moat.internal.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"198.18.0.2"}},
		{"host.moat.internal.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, nil},
		{"example.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"203.0.113.7"}},
		{"example.test.", dnsmessage.TypeAAAA, dnsmessage.RCodeSuccess, nil},
		{"nowhere.test.", dnsmessage.TypeA, dnsmessage.RCodeNameError, nil},
		{"down.test.", dnsmessage.TypeA, dnsmessage.RCodeServerFailure, nil},
		// At most 8 records, so the answer fits DNS's 512-byte UDP limit.
		{"many.test.", dnsmessage.TypeA, dnsmessage.RCodeSuccess, []string{"203.0.113.0", "", "", "", "", "", "", ""}},
	} {
		resp := Answer(context.Background(), query(t, tc.name, tc.typ), lookup)
		if len(resp) > dnsBufferSize {
			t.Errorf("%s: answer of %d bytes", tc.name, len(resp))
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("%s %v: unpack answer: %v", tc.name, tc.typ, err)
		}
		var got []string
		for _, a := range m.Answers {
			r := a.Body.(*dnsmessage.AResource)
			got = append(got, netip.AddrFrom4(r.A).String())
		}
		if m.ID != 77 || !m.Response || m.RCode != tc.rcode || len(m.Questions) != 1 || len(got) != len(tc.want) ||
			(len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%s %v: id %d response %v rcode %v answers %v; want rcode %v answers %v",
				tc.name, tc.typ, m.ID, m.Response, m.RCode, got, tc.rcode, tc.want)
		}
	}
	if Answer(context.Background(), []byte{1, 2, 3}, lookup) != nil {
		t.Error("garbage got an answer")
	}
}

// FuzzAnswer: whatever an instance sends to the egress resolver, Answer
// neither panics nor answers a non-query, and what it answers parses.
func FuzzAnswer(f *testing.F) {
	for _, name := range []string{"host.moat.internal.", "example.test."} {
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, RecursionDesired: true})
		b.StartQuestions()
		b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
		q, _ := b.Finish()
		f.Add(q)
	}
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0})
	lookup := func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("203.0.113.7")}, nil
	}
	f.Fuzz(func(t *testing.T, q []byte) {
		resp := Answer(context.Background(), q, lookup)
		if resp == nil {
			return
		}
		var m dnsmessage.Message
		if err := m.Unpack(resp); err != nil {
			t.Fatalf("answer to %x does not parse: %v", q, err)
		}
		if !m.Response || len(resp) > dnsBufferSize {
			t.Fatalf("answer to %x: response %v, %d bytes", q, m.Response, len(resp))
		}
	})
}

// tcpPair is a connected pair of loopback TCP sockets.
func tcpPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	a, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if b, err = l.Accept(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// A client that resets its connection ends both directions of the relay,
// though the host side never writes or closes.
func TestPipeEndsBothWaysOnReset(t *testing.T) {
	client, proxyIn := tcpPair(t)
	proxyOut, server := tcpPair(t)
	_ = server // silent: it neither writes nor closes
	done := make(chan struct{}, 2)
	go func() { pipe(proxyOut, proxyIn); done <- struct{}{} }()
	go func() { pipe(proxyIn, proxyOut); done <- struct{}{} }()
	client.Write([]byte("x"))
	client.(*net.TCPConn).SetLinger(0)
	client.Close() // RST
	for range 2 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a relay direction still runs after the client reset its connection")
		}
	}
}
