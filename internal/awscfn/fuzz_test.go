package awscfn

import (
	"os"
	"testing"
)

// FuzzValidate: any JSON a user passes to moat template validate
// --template yields findings, never a panic. Seeds are the golden
// templates; go test -fuzz=FuzzValidate keeps crashers in testdata/fuzz.
func FuzzValidate(f *testing.F) {
	for _, name := range []string{"testdata/realtime.golden.json", "testdata/three-zones.golden.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"Resources":{"A":{"Type":"AWS::EC2::Subnet","Properties":{"VpcId":{"Ref":"A"},"CidrBlock":7}}}}`))
	f.Add([]byte(`{"Resources":{"L":{"Type":"AWS::AutoScaling::ScalingPolicy","Properties":{"TargetTrackingConfiguration":{"PredefinedMetricSpecification":{"PredefinedMetricType":"ALBRequestCountPerTarget","ResourceLabel":{"Fn::Join":["/",[{"Fn::GetAtt":"X"},1]]}}}}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tpl, err := ParseJSON(b)
		if err != nil {
			return
		}
		for _, fd := range Validate(tpl) {
			if fd.Path == "" || fd.Message == "" {
				t.Errorf("finding without path or message: %+v", fd)
			}
		}
	})
}
