package awscost

// PricesOf is when the prices below were taken: AWS's published on-demand
// prices (Linux, shared tenancy), per hour, in US dollars. They change;
// the AWS Pricing Calculator has today's.
const PricesOf = "2025-06"

// HoursPerMonth is the month AWS's own calculator uses.
const HoursPerMonth = 730

// regionPrices are one region's hourly prices.
type regionPrices struct {
	// large is the price of each family's .large size; the other sizes
	// scale by sizeFactor (within a family AWS prices a size twice the
	// one below it).
	large map[string]float64
	nat   float64 // NAT gateway hour (plus a per-GB charge)
	alb   float64 // application load balancer hour (plus LCUs)
}

// publicIPv4 is the hourly price of a public IPv4 address, in use or not,
// in every region (since February 2024).
const publicIPv4 = 0.005

// natPerGB is NAT gateway data processing, per GB, in us-east-1 (the other
// regions' are close to their hourly price).
const natPerGB = 0.045

var prices = map[string]regionPrices{
	"us-east-1": {large: map[string]float64{"t3": 0.0832, "t4g": 0.0672, "m5": 0.096, "m7g": 0.0816, "c5": 0.085}, nat: 0.045, alb: 0.0225},
	"us-west-2": {large: map[string]float64{"t3": 0.0832, "t4g": 0.0672, "m5": 0.096, "m7g": 0.0816, "c5": 0.085}, nat: 0.045, alb: 0.0225},
	"eu-west-1": {large: map[string]float64{"t3": 0.0912, "t4g": 0.0736, "m5": 0.107, "m7g": 0.0892, "c5": 0.096}, nat: 0.048, alb: 0.0252},
	"eu-central-1": {large: map[string]float64{"t3": 0.096, "t4g": 0.0768, "m5": 0.115, "m7g": 0.0966, "c5": 0.097},
		nat: 0.052, alb: 0.027},
	"ap-northeast-1": {large: map[string]float64{"t3": 0.1088, "t4g": 0.0864, "m5": 0.124, "m7g": 0.1052, "c5": 0.107},
		nat: 0.062, alb: 0.0243},
}

// sizeFactor is a size's price relative to .large; the sizes each family
// has are listed (m5 and c5 start at large, m7g at medium).
var sizeFactor = map[string]float64{
	"nano": 1.0 / 16, "micro": 1.0 / 8, "small": 1.0 / 4, "medium": 1.0 / 2,
	"large": 1, "xlarge": 2, "2xlarge": 4, "4xlarge": 8,
}

var familySizes = map[string][]string{
	"t3":  {"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"},
	"t4g": {"nano", "micro", "small", "medium", "large", "xlarge", "2xlarge"},
	"m5":  {"large", "xlarge", "2xlarge", "4xlarge"},
	"m7g": {"medium", "large", "xlarge", "2xlarge", "4xlarge"},
	"c5":  {"large", "xlarge", "2xlarge", "4xlarge"},
}
