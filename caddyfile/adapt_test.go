package caddyfile_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/tildegate/tildegate"
)

var update = flag.Bool("update", false, "rewrite the JSON half of the golden files from the adapter's output")

// goldenSeparator splits a golden file into its Caddyfile and its JSON.
const goldenSeparator = "----------"

// TestAdaptGolden adapts every testdata/adapt/*.caddyfiletest Caddyfile and
// compares the JSON with the file's second half.
func TestAdaptGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			caddyfileText, expected, ok := strings.Cut(string(data), goldenSeparator)
			if !ok {
				t.Fatalf("%s: no %q line", file, goldenSeparator)
			}
			caddyfileText = strings.TrimSpace(caddyfileText) + "\n"
			if *update {
				writeGolden(t, file, caddyfileText)
				return
			}
			if !caddytest.CompareAdapt(t, file, caddyfileText, "caddyfile", strings.TrimSpace(expected)) {
				t.Errorf("%s: adapted JSON differs (see the diff above; -update rewrites it)", file)
			}
		})
	}
}

func writeGolden(t *testing.T, file, caddyfileText string) {
	t.Helper()
	result, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfileText), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, result, "", "\t"); err != nil {
		t.Fatal(err)
	}
	out := caddyfileText + goldenSeparator + "\n" + pretty.String() + "\n"
	if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestAdaptErrors checks that each mistake is refused with a message that
// says what is wrong and where.
func TestAdaptErrors(t *testing.T) {
	cases := []struct {
		name, caddyfile, want string
	}{
		{
			name: "server defined twice",
			caddyfile: `:8080 {
	tildegate {
		server srv1 http://127.0.0.1:9001
		server SRV1 http://127.0.0.1:9002
	}
}`,
			want: "server SRV1 is defined twice: Caddyfile:3 and Caddyfile:4",
		},
		{
			name: "rdp given twice",
			caddyfile: `:8080 {
	tildegate {
		rdp desk 10.0.0.1:3389
		rdp DESK 10.0.0.2:3389
	}
}`,
			want: "rdp DESK is defined twice: Caddyfile:3 and Caddyfile:4",
		},
		{
			name: "rdp without a port",
			caddyfile: `:8080 {
	tildegate {
		rdp desk 10.0.0.1
	}
}`,
			want: "rdp desk: address 10.0.0.1: missing port in address",
		},
		{
			name: "rdp with a bad port",
			caddyfile: `:8080 {
	tildegate {
		rdp desk 10.0.0.1:70000
	}
}`,
			want: `rdp desk: "10.0.0.1:70000": want host:port with a port from 1 to 65535`,
		},
		{
			name: "rdp without addresses",
			caddyfile: `:8080 {
	tildegate {
		rdp desk
	}
}`,
			want: "rdp desk: give one or more host:port addresses",
		},
		{
			name: "unknown tildegate_rdp option",
			caddyfile: `{
	servers {
		listener_wrappers {
			tildegate_rdp {
				first_packet 5s
			}
			tls
		}
	}
}
:8443 {
	respond ok
}`,
			want: `unrecognized tildegate_rdp option "first_packet"`,
		},
		{
			name: "bad tildegate_rdp duration",
			caddyfile: `{
	servers {
		listener_wrappers {
			tildegate_rdp {
				first_packet_timeout soon
			}
		}
	}
}
:8443 {
	respond ok
}`,
			want: `first_packet_timeout: want a positive duration, not "soon"`,
		},
		{
			name: "unknown option",
			caddyfile: `:8080 {
	tildegate {
		balance_fil /etc/balance.bin
	}
}`,
			want: `unrecognized tildegate option "balance_fil"`,
		},
		{
			name: "upstreams in a balance_file block",
			caddyfile: `:8080 {
	tildegate {
		balance_file /etc/balance.bin {
			to http://127.0.0.1:9001
		}
	}
}`,
			want: "upstreams come from the file",
		},
		{
			name: "server without upstreams",
			caddyfile: `:8080 {
	tildegate {
		server srv1
	}
}`,
			want: "server srv1: no upstreams",
		},
		{
			name: "bad server name",
			caddyfile: `:8080 {
	tildegate {
		server srv/1 http://127.0.0.1:9001
	}
}`,
			want: `server name "srv/1": '/' is not allowed`,
		},
		{
			name: "bad reverse_proxy option",
			caddyfile: `:8080 {
	tildegate {
		server srv1 http://127.0.0.1:9001 {
			lb_policy no_such_policy
		}
	}
}`,
			want: "no_such_policy",
		},
		{
			name: "two paths for one balance_file",
			caddyfile: `:8080 {
	tildegate {
		balance_file a.bin b.bin
	}
}`,
			want: "Caddyfile:3",
		},
		{
			name: "bad poll interval",
			caddyfile: `:8080 {
	tildegate {
		poll_interval soon
	}
}`,
			want: "poll_interval",
		},
		{
			name: "agent without password",
			caddyfile: `:8080 {
	tildegate {
		agent home {
			allow 1.2.3.4
		}
	}
}`,
			want: "agent home: password is required",
		},
		{
			name: "agent with a bad filter",
			caddyfile: `:8080 {
	tildegate {
		agent home {
			password x
			allow 1.2.*.4
		}
	}
}`,
			want: "agent home: allow: Caddyfile:5:",
		},
		{
			name: "agent and server with one name",
			caddyfile: `:8080 {
	tildegate {
		server home 127.0.0.1:80
		agent HOME {
			password x
		}
	}
}`,
			want: "agent HOME is defined twice: Caddyfile:3 and Caddyfile:4",
		},
		{
			name: "tunnel alive not below dead",
			caddyfile: `:8080 {
	tildegate {
		tunnel {
			alive_interval 1m
			dead_after 30s
		}
	}
}`,
			want: "alive_interval (1m0s) must be shorter than dead_after (30s)",
		},
		{
			name: "unknown tunnel option",
			caddyfile: `:8080 {
	tildegate {
		tunnel {
			keepalive 1s
		}
	}
}`,
			want: `unrecognized tunnel option "keepalive"`,
		},
		{
			name: "unknown agent option",
			caddyfile: `:8080 {
	tildegate {
		agent home {
			password pw
			require_tsl
		}
	}
}`,
			want: `agent home: unrecognized option "require_tsl"`,
		},
		{
			name: "argument after directive",
			caddyfile: `:8080 {
	tildegate /~~* extra {
	}
}`,
			want: "Caddyfile:2",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(c.caddyfile), map[string]any{"filename": "Caddyfile"})
			if err == nil {
				t.Fatalf("adapted without error; want one containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not contain %q", err, c.want)
			}
		})
	}
}

// TestAdaptErrorsHidePasswords: a mistyped agent block is refused without
// quoting its password.
func TestAdaptErrorsHidePasswords(t *testing.T) {
	for _, block := range []string{
		"password S3cret Passw0rd",       // blanks, not quoted
		"password\n\t\t\tS3cretPassw0rd", // the password on its own line
		"passwd S3cretPassw0rd",          // mistyped option
		"S3cretPassw0rd",                 // the option forgotten
	} {
		caddyfile := ":8080 {\n\ttildegate {\n\t\tagent home {\n\t\t\t" + block + "\n\t\t}\n\t}\n}\n"
		_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
		if err == nil {
			t.Errorf("%q: adapted without error", block)
			continue
		}
		if !strings.Contains(err.Error(), "Caddyfile:") {
			t.Errorf("%q: error %q does not say where", block, err)
		}
		for _, part := range []string{"S3cret", "Passw0rd"} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("%q: error quotes the password: %v", block, err)
			}
		}
	}
}
