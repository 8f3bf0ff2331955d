package cfnstandin

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Images are the image ids the stand-in's SSM answers for the Amazon
// Linux public parameters (/aws/service/ami-amazon-linux-latest/...), by
// the parameter's last word (x86_64, arm64).
var Images = map[string]string{"x86_64": "ami-0standin00x86064", "arm64": "ami-0standin00arm064"}

// ssm answers SSM's GetParameter (awsjson1.1, X-Amz-Target
// AmazonSSM.GetParameter), which moat deploy calls to resolve the image
// once; it reports whether r was an SSM request.
func (s *Server) ssm(w http.ResponseWriter, r *http.Request) bool {
	target := r.Header.Get("X-Amz-Target")
	if !strings.HasPrefix(target, "AmazonSSM.") {
		return false
	}
	action := strings.TrimPrefix(target, "AmazonSSM.")
	s.calls = append(s.calls, action)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	fail := func(code, msg string) {
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
	}
	if action != "GetParameter" {
		fail("InvalidAction", "the stand-in does not implement "+action)
		return true
	}
	var in struct{ Name string }
	if b, err := io.ReadAll(r.Body); err != nil || json.Unmarshal(b, &in) != nil {
		fail("ValidationException", "malformed request")
		return true
	}
	const prefix = "/aws/service/ami-amazon-linux-latest/"
	arch := in.Name[strings.LastIndex(in.Name, "-")+1:]
	if !strings.HasPrefix(in.Name, prefix) || Images[arch] == "" {
		fail("ParameterNotFound", fmt.Sprintf("Parameter %s not found.", in.Name))
		return true
	}
	json.NewEncoder(w).Encode(map[string]any{"Parameter": map[string]any{
		"Name": in.Name, "Type": "String", "Value": Images[arch], "Version": 1, "DataType": "aws:ec2:image",
	}})
	return true
}
