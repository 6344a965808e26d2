package oauth1

import (
	"net/url"
	"testing"
)

// TestRFC5849Example checks the worked example of RFC 5849 §1.2: the photo
// request signed with HMAC-SHA1.
func TestRFC5849Example(t *testing.T) {
	u, _ := url.Parse("http://photos.example.net/photos?file=vacation.jpg&size=original")
	params := u.Query()
	params.Set("oauth_consumer_key", "dpf43f3p2l4k3l03")
	params.Set("oauth_token", "nnch734d00sl2jdk")
	params.Set("oauth_signature_method", "HMAC-SHA1")
	params.Set("oauth_timestamp", "137131202")
	params.Set("oauth_nonce", "chapoH")
	base := BaseString("GET", u, params)
	wantBase := "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacation.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03%26oauth_nonce%3DchapoH%26oauth_signature_method%3DHMAC-SHA1%26oauth_timestamp%3D137131202%26oauth_token%3Dnnch734d00sl2jdk%26size%3Doriginal"
	if base != wantBase {
		t.Fatalf("BaseString = %q, want %q", base, wantBase)
	}
	if got, want := Sign(base, "kd94hf93k423kf44", "pfkkdhi9sl3r4s00"), "MdpQcU8iPSUjWoN/UDMsK2sui9I="; got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
}

func TestEncode(t *testing.T) {
	for in, want := range map[string]string{
		"abc-._~XYZ019": "abc-._~XYZ019",
		"a b+c/=&":      "a%20b%2Bc%2F%3D%26",
		"é":             "%C3%A9",
	} {
		if got := Encode(in); got != want {
			t.Errorf("Encode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseHeader(t *testing.T) {
	got, ok := ParseHeader(`OAuth realm="Photos", oauth_consumer_key="dpf43f3p2l4k3l03", oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D"`)
	if !ok || got["oauth_signature"] != "MdpQcU8iPSUjWoN/UDMsK2sui9I=" || got["realm"] != "Photos" {
		t.Errorf("ParseHeader = %v, %v", got, ok)
	}
	for _, bad := range []string{"", "Bearer x", `OAuth a=b`, `OAuth a="%zz"`} {
		if _, ok := ParseHeader(bad); ok {
			t.Errorf("ParseHeader(%q) ok, want refusal", bad)
		}
	}
}
