package mux

import (
	"encoding/binary"
	"fmt"
)

// The frames of yamux (its spec.md): a 12-byte header, and after a data
// frame's header its body.
const (
	headerSize   = 12
	protoVersion = 0
)

// Frame types.
const (
	typeData         = 0
	typeWindowUpdate = 1
	typePing         = 2
	typeGoAway       = 3
)

// Frame flags.
const (
	flagSYN = 1 << 0
	flagACK = 1 << 1
	flagFIN = 1 << 2
	flagRST = 1 << 3
)

// Codes of a GoAway frame.
const (
	goAwayNormal   = 0
	goAwayProtocol = 1
)

// header is a frame's header.
type header [headerSize]byte

func makeHeader(typ uint8, flags uint16, id, length uint32) header {
	var h header
	h[0] = protoVersion
	h[1] = typ
	binary.BigEndian.PutUint16(h[2:4], flags)
	binary.BigEndian.PutUint32(h[4:8], id)
	binary.BigEndian.PutUint32(h[8:12], length)
	return h
}

func (h *header) version() uint8   { return h[0] }
func (h *header) typ() uint8       { return h[1] }
func (h *header) flags() uint16    { return binary.BigEndian.Uint16(h[2:4]) }
func (h *header) streamID() uint32 { return binary.BigEndian.Uint32(h[4:8]) }
func (h *header) length() uint32   { return binary.BigEndian.Uint32(h[8:12]) }
func (h header) String() string {
	return fmt.Sprintf("type %d, flags %#x, stream %d, length %d", h.typ(), h.flags(), h.streamID(), h.length())
}
