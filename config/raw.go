package config

import "reflect"

// rawConfig mirrors MetalLB v0.12's configFile: the document as written, before validation.
// The yaml tags are the keys, matched case-sensitively as yaml.v2 matches them.
type rawConfig struct {
	Peers          []rawPeer         `yaml:"peers"`
	BGPCommunities map[string]string `yaml:"bgp-communities"`
	Pools          []rawPool         `yaml:"address-pools"`
	BFDProfiles    []rawBFDProfile   `yaml:"bfd-profiles"`
}

type rawPeer struct {
	MyASN         uint32            `yaml:"my-asn"`
	ASN           uint32            `yaml:"peer-asn"`
	Addr          string            `yaml:"peer-address"`
	SrcAddr       string            `yaml:"source-address"`
	Port          uint16            `yaml:"peer-port"`
	HoldTime      string            `yaml:"hold-time"`
	KeepaliveTime string            `yaml:"keepalive-time"`
	RouterID      string            `yaml:"router-id"`
	NodeSelectors []rawNodeSelector `yaml:"node-selectors"`
	Password      string            `yaml:"password"`
	BFDProfile    string            `yaml:"bfd-profile"`
	EBGPMultiHop  bool              `yaml:"ebgp-multihop"`
}

type rawNodeSelector struct {
	MatchLabels      map[string]string   `yaml:"match-labels"`
	MatchExpressions []rawSelectorReqmnt `yaml:"match-expressions"`
}

type rawSelectorReqmnt struct {
	Key      string   `yaml:"key"`
	Operator string   `yaml:"operator"`
	Values   []string `yaml:"values"`
}

type rawPool struct {
	Name              string               `yaml:"name"`
	Protocol          string               `yaml:"protocol"`
	Addresses         []string             `yaml:"addresses"`
	AvoidBuggyIPs     bool                 `yaml:"avoid-buggy-ips"`
	AutoAssign        *bool                `yaml:"auto-assign"`
	BGPAdvertisements []rawBGPAdvertisment `yaml:"bgp-advertisements"`
}

type rawBGPAdvertisment struct {
	AggregationLength   *int     `yaml:"aggregation-length"`
	AggregationLengthV6 *int     `yaml:"aggregation-length-v6"`
	LocalPref           *uint32  `yaml:"localpref"`
	Communities         []string `yaml:"communities"`
}

type rawBFDProfile struct {
	Name             string  `yaml:"name"`
	ReceiveInterval  *uint32 `yaml:"receive-interval"`
	TransmitInterval *uint32 `yaml:"transmit-interval"`
	DetectMultiplier *uint32 `yaml:"detect-multiplier"`
	EchoInterval     *uint32 `yaml:"echo-interval"`
	EchoMode         *bool   `yaml:"echo-mode"`
	PassiveMode      *bool   `yaml:"passive-mode"`
	MinimumTTL       *uint32 `yaml:"minimum-ttl"`
}

// decode turns the document into a rawConfig: parsed into its node tree, checked against
// the expansion limits, then decoded strictly (see decodeNode). An empty document is an
// empty rawConfig.
func decode(data []byte) (*rawConfig, error) {
	root, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	var raw rawConfig
	if root == nil {
		return &raw, nil
	}
	if err := decodeNode(root, reflect.ValueOf(&raw).Elem(), nil); err != nil {
		return nil, err
	}
	return &raw, nil
}
