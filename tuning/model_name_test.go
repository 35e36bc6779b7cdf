package tuning

import (
	"strings"
	"testing"
)

func TestCheckModelName(t *testing.T) {
	tests := []struct {
		name string
		want string // "" for valid, else a substring of the error
	}{
		{"unet", ""},
		{"demo-sweep", ""},
		{"UNet_v2.1", ""},
		{"9lives", ""},
		{strings.Repeat("a", 128), ""},
		{"", "required"},
		{strings.Repeat("a", 129), "is 129 bytes, the limit is 128"},
		{"-x", `"-x" must start with a letter or a digit`},
		{".hidden", "must start with a letter or a digit"},
		{"team/unet", `"team/unet" has '/' at byte 4`},
		{"unet:predict", `has ':' at byte 4`},
		{"my model", `has ' ' at byte 2`},
		{"café", `has 'é' at byte 3`},
		{"a\xffb", `has '�' at byte 1`},
		{"a\x00b", `has '\x00' at byte 1`},
	}
	for _, tt := range tests {
		err := CheckModelName(tt.name)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("CheckModelName(%q) = %v, want nil", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("CheckModelName(%q) = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}
