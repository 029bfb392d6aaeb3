// Package balancebin reads and writes the two load-balancing files of a
// TSplus farm as they are: balance.bin, read by the gateway, and
// backbalance.bin, read by each subserver.
//
// Both files are a list of entries, each ending with ";". Blank lines,
// carriage returns, line feeds and spaces or tabs between entries are
// ignored, as is a UTF-8 byte order mark at the start of the file. Several
// entries may stand on one line, but an entry never spans lines. A line
// whose first non-blank characters are "#" or "//" is a comment; comments
// are an extension of this package and may only start a line.
//
// A balance.bin entry names a server and says how to reach it:
//
//	entry  = [ tls " " ] "/~~" name "=" target ";"
//	tls    = "SSL" | "SSL_STRICT" | "SSL_JVM_TM" | "SSL_JVM_TM_STRICT"
//	target = host ":" port [ " RDPPORT" ]                   direct entry
//	       | password "#" ":" ( port | "*" [ filter ] )     back entry
//	filter = ipv4 | ipv4-prefix "*" | dns-name
//
// for example
//
//	/~~srv1=192.168.1.10:80;
//	SSL_STRICT /~~portal=portal.example.com:443;
//	/~~office=pw#:*51.254.22.85;
//
// A backbalance.bin entry tells a subserver how to register with the
// gateway, through which proxies, which local service to expose and which
// RDP service native RDP through the gateway reaches:
//
//	entry = [ "SSL " ] "/~~" name "=" password "#" gateway-host ":" port
//	        { " -> " proxy } [ " => " local ] [ " RDPPORT " rdp ] ";"
//	proxy = [ [ domain ] "\" user ":" pass "@" | user ":" pass "@" ] host ":" port
//	local = host ":" port                                  default 127.0.0.1:80
//	rdp   = host ":" port                                  default 127.0.0.1:3389
//
// The password ends at the last "#" before the first " -> ": it may hold
// "#", " => " and " RDPPORT ", but not " -> ". For example
//
//	SSL /~~home=pw#gw.example.com:8443 -> corp\me:pw@10.0.0.1:808 => 127.0.0.1:8080;
//	/~~srv1=pw#gw.example.com:443 => 127.0.0.1:8080 RDPPORT 10.0.0.5:3389;
//
// Parse and ParseBack stop at the first malformed entry and return an
// *Error that tells what was found where and what was expected there. Of
// the text after an entry's "=", where passwords stand, it never quotes
// more than one character, so that a mistyped entry does not put its
// password in a log.
// Format and FormatBack print entries back in canonical spacing, so that
// parsing their output yields the same entries.
package balancebin
