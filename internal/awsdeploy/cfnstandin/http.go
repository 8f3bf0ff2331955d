// The wire protocols: SigV4-signed awsquery (CloudFormation, STS, EC2) and
// path-style S3 requests, dispatched by action.

package cfnstandin

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	auth := r.Header.Get("Authorization")
	m := regexp.MustCompile(`Credential=([^/]+)/`).FindStringSubmatch(auth)
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || m == nil {
		writeErr(w, http.StatusForbidden, cfnNS, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[m[1]] = true
	if s.ssm(w, r) {
		return
	}
	if r.Method == http.MethodPost && r.URL.Path == "/" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if err := r.ParseForm(); err != nil {
			writeErr(w, 400, cfnNS, "MalformedQueryString", err.Error())
			return
		}
		s.query(w, r.PostForm)
		return
	}
	s.s3(w, r)
}

func (s *Server) query(w http.ResponseWriter, f url.Values) {
	action := f.Get("Action")
	s.calls = append(s.calls, action)
	s.tick()
	switch action {
	case "GetCallerIdentity":
		writeXML(w, stsNS, action, fmt.Sprintf("<Arn>arn:aws:iam::%s:user/standin</Arn><UserId>AIDASTANDIN</UserId><Account>%s</Account>", Account, Account))
	case "DescribeStacks":
		s.describeStacks(w, f)
	case "CreateChangeSet":
		s.createChangeSet(w, f)
	case "DescribeChangeSet":
		s.describeChangeSet(w, f)
	case "ExecuteChangeSet":
		s.executeChangeSet(w, f)
	case "DeleteChangeSet":
		s.deleteChangeSet(w, f)
	case "DescribeStackEvents":
		s.describeStackEvents(w, f)
	case "ListStackResources":
		s.listStackResources(w, f)
	case "GetTemplateSummary":
		s.getTemplateSummary(w, f)
	case "DeleteStack":
		s.deleteStack(w, f)
	case "DescribeAvailabilityZones":
		// EC2 (ec2query): the zones of us-east-1, for moat deploy's check.
		var b strings.Builder
		fmt.Fprintf(&b, `<DescribeAvailabilityZonesResponse xmlns="%s"><requestId>standin-request</requestId><availabilityZoneInfo>`, ec2NS)
		for _, z := range Zones {
			fmt.Fprintf(&b, "<item><zoneName>%s</zoneName><zoneState>available</zoneState><regionName>us-east-1</regionName></item>", z)
		}
		b.WriteString("</availabilityZoneInfo></DescribeAvailabilityZonesResponse>")
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, b.String())
	default:
		writeErr(w, 400, cfnNS, "InvalidAction", "the stand-in does not implement "+action)
	}
}

func writeXML(w http.ResponseWriter, ns, action, inner string) {
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>standin-request</RequestId></ResponseMetadata></%sResponse>`,
		action, ns, action, inner, action, action)
}

func writeErr(w http.ResponseWriter, status int, ns, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>Sender</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>standin-request</RequestId></ErrorResponse>`, ns, code, esc(msg))
}

func esc(s string) string {
	var b bytes.Buffer
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

func ts(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func list(f url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := f[fmt.Sprintf("%s.member.%d", prefix, i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}
