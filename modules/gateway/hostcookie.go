package gateway

import (
	"strings"

	"go.uber.org/zap"
)

// hostCookiePrefix starts the names of cookies that browsers keep for the
// whole host: they must carry Path=/ and no Domain. Browsers compare it
// case-insensitively.
const hostCookiePrefix = "__Host-"

// isHostCookie reports whether a Set-Cookie value sets a __Host- cookie.
func isHostCookie(setCookie string) bool {
	name := strings.TrimLeft(setCookie, " \t")
	return len(name) >= len(hostCookiePrefix) && strings.EqualFold(name[:len(hostCookiePrefix)], hostCookiePrefix)
}

// warnHostCookie logs, once per name for the handler's config, that the
// name's server set a __Host- cookie. Browsers refuse such a cookie unless
// its Path is "/", so it is passed on as it is, and then it reaches every
// name's server on the gateway's host, not only the one that set it: no
// rewriting can keep it to /~~name. Only the cookie's name is logged, never
// its value.
func (h *Handler) warnHostCookie(name, setCookie string) {
	if h == nil || h.logger == nil || h.hostCookies == nil {
		return
	}
	if _, warned := h.hostCookies.LoadOrStore(lookupKey(name), struct{}{}); warned {
		return
	}
	cookie, _, _ := strings.Cut(strings.TrimSpace(setCookie), "=")
	h.logger.Warn("a server set a __Host- cookie: browsers keep it for the whole gateway host and send it to every name's server, not only this one",
		zap.String("name", name), zap.String("cookie", cookie))
}
