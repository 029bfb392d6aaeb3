// Package x224 recognises the first packet of an RDP client and takes a
// tildegate routing name out of it.
//
// An RDP client opens with one TPKT (RFC 1006) holding an X.224 Connection
// Request ([MS-RDPBCGR] 2.2.1.1):
//
//	03 00 LL LL      TPKT: version 3, reserved 0, total length (big-endian)
//	LI               X.224 length indicator: bytes that follow it
//	E0               Connection Request code (upper nibble 0xE)
//	00 00 00 00 00   DST-REF, SRC-REF, class
//	...              optional routing line ending in CR LF
//	...              optional RDP_NEG_REQ, RDP_NEG_CORRELATION_INFO
//
// The routing line names the tildegate route in one of three forms:
//
//	Cookie: mstshash=/~~NAME\r\n   (xfreerdp /u:'/~~NAME')
//	Cookie: msts=/~~NAME\r\n       (a routing token sent verbatim)
//	/~~NAME\r\n                    (xfreerdp /load-balance-info:'/~~NAME')
//
// A listener that shares its port with TLS and HTTP uses the package in
// three steps: it reads 1 byte and calls [StartsRDP]; if it is RDP, it
// reads the rest of the 4-byte TPKT header and calls [PacketLength]; it
// reads the rest of that length and calls [Parse], which returns the name
// and the packet to forward, with the routing line removed and the
// lengths fixed. The package does no I/O.
package x224
