package x224

import (
	"bytes"
	"testing"
)

func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		req, err := Parse(data)
		if !bytes.Equal(data, orig) {
			t.Fatalf("Parse modified its input")
		}
		if err != nil {
			if req.Name != "" || req.Packet != nil {
				t.Fatalf("Request %+v with error %v", req, err)
			}
			return
		}
		if !StartsRDP(data[0]) {
			t.Fatalf("Parse accepted % x but StartsRDP did not", data)
		}
		if req.Name == "" {
			if !bytes.Equal(req.Packet, data) {
				t.Fatalf("no name, but Packet % x differs from input % x", req.Packet, data)
			}
			return
		}
		if len(req.Name) > MaxNameLen {
			t.Fatalf("name %q too long", req.Name)
		}
		if len(req.Packet) >= len(data) {
			t.Fatalf("Packet % x not shorter than input % x", req.Packet, data)
		}
		again, err := Parse(req.Packet)
		if err != nil {
			t.Fatalf("Parse(Packet % x): %v (input % x)", req.Packet, err, data)
		}
		if again.Name != "" {
			t.Fatalf("Parse(Packet) found name %q again (input % x)", again.Name, data)
		}
		if !bytes.Equal(again.Packet[HeaderLen:], req.Packet[HeaderLen:]) {
			t.Fatalf("Parse(Packet) changed the bytes after the header")
		}
		if !bytes.Equal(req.Packet[HeaderLen+fixedLen:], data[len(data)-len(req.Packet)+HeaderLen+fixedLen:]) {
			t.Fatalf("bytes after the routing line changed")
		}
		if !bytes.Equal(req.Packet[HeaderLen+1:HeaderLen+fixedLen], data[HeaderLen+1:HeaderLen+fixedLen]) {
			t.Fatalf("fixed X.224 part changed")
		}
	})
}
