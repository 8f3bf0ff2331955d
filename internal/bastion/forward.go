package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"

	"golang.org/x/crypto/ssh"
)

// directTCPIP is the payload of a direct-tcpip channel open (RFC 4254 7.2).
type directTCPIP struct {
	Host       string
	Port       uint32
	OriginHost string
	OriginPort uint32
}

func (s *Server) forward(ctx context.Context, nch ssh.NewChannel, st *connState, user, fp string) {
	start := s.cfg.Now()
	base := []any{"conn", st.id, "source", st.source, "user", user, "fingerprint", fp}
	refuse := func(reason ssh.RejectionReason, dst, why string) {
		_ = nch.Reject(reason, "moat bastion: "+why)
		s.audit.Warn("forward", append(base, "destination", dst, "result", "refused", "reason", why)...)
	}
	var p directTCPIP
	if err := ssh.Unmarshal(nch.ExtraData(), &p); err != nil {
		refuse(ssh.ConnectionFailed, "", "malformed direct-tcpip request")
		return
	}
	dstText := net.JoinHostPort(p.Host, strconv.FormatUint(uint64(p.Port), 10))
	addr, err := netip.ParseAddr(p.Host)
	if err != nil {
		refuse(ssh.Prohibited, dstText, fmt.Sprintf("destination %q is not an IP address: use the instance's private IP", p.Host))
		return
	}
	if p.Port == 0 || p.Port > 65535 {
		refuse(ssh.Prohibited, dstText, fmt.Sprintf("destination port %d is out of range", p.Port))
		return
	}
	dst := netip.AddrPortFrom(addr.Unmap(), uint16(p.Port))
	dstText = dst.String()
	if s.cfg.Policy != nil {
		if err := s.cfg.Policy(dst); err != nil {
			refuse(ssh.Prohibited, dstText, "refused "+dstText+": "+err.Error())
			return
		}
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	dc, err := s.cfg.Dial(dctx, "tcp", dstText)
	cancel()
	if err != nil {
		why := "connect to " + dstText + " failed: " + err.Error()
		if errors.Is(err, context.DeadlineExceeded) {
			why = fmt.Sprintf("connect to %s timed out after %v", dstText, s.cfg.DialTimeout)
		}
		refuse(ssh.ConnectionFailed, dstText, why)
		return
	}
	ch, reqs, err := nch.Accept()
	if err != nil {
		dc.Close()
		s.audit.Warn("forward", append(base, "destination", dstText, "result", "failed", "reason", "accept channel: "+err.Error())...)
		return
	}
	go ssh.DiscardRequests(reqs)
	s.audit.Info("forward_open", append(base, "destination", dstText)...)
	s.countForward(dst, 1)
	defer s.countForward(dst, -1)

	var closeOnce sync.Once
	closeBoth := func() {
		closeOnce.Do(func() {
			ch.Close()
			dc.Close()
		})
	}
	stop := context.AfterFunc(ctx, closeBoth)
	defer stop()

	var toDst, fromDst int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		n, err := io.Copy(dc, ch)
		toDst = n
		if err != nil {
			closeBoth()
			return
		}
		if cw, ok := dc.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	go func() {
		defer wg.Done()
		n, err := io.Copy(ch, dc)
		fromDst = n
		if err != nil {
			closeBoth()
			return
		}
		_ = ch.CloseWrite()
	}()
	wg.Wait()
	closeBoth()
	s.audit.Info("forward", append(base, "destination", dstText, "result", "closed",
		"bytes_to_destination", toDst, "bytes_from_destination", fromDst,
		"duration_ms", s.cfg.Now().Sub(start).Milliseconds())...)
}
