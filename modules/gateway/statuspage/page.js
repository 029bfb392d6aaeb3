"use strict";
// Reads the status as JSON from this page's own address every 2 seconds
// and renders the tables again, as page.html does. Everything goes into
// the page as text, never as markup. A refresh that took long (a farm of
// thousands of names) waits ten times as long before the next, a minute at
// most, so that an open page costs the gateway and the browser about a
// tenth of their time; a refresh with no answer in 30 seconds is given up.
(function () {
	var period = 2000, slowdown = 10, longest = 60000, timeout = 30000;
	var units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
	var names = document.querySelector("#names tbody");
	var agents = document.querySelector("#agents tbody");
	var summary = document.getElementById("summary");
	var readAt = document.getElementById("read-at");
	var problem = document.getElementById("problem");

	function bytes(n) {
		if (n < 1024) {
			return n + " B";
		}
		var v = n / 1024, i = 0;
		while (v >= 1024 && i < units.length - 1) {
			v /= 1024;
			i++;
		}
		return v.toFixed(1) + " " + units[i];
	}

	// parseTime parses an RFC 3339 time as Go writes it, with up to nine
	// decimals, into milliseconds.
	function parseTime(s) {
		return Date.parse(s.replace(/(\.\d{3})\d+/, "$1"));
	}

	function clock(ms) {
		return new Date(ms).toISOString().slice(0, 19).replace("T", " ") + " UTC";
	}

	function ago(now, ms) {
		var s = Math.max(0, Math.round((now - ms) / 1000));
		if (s >= 86400) {
			return Math.floor(s / 86400) + " d ago";
		}
		if (s >= 3600) {
			return Math.floor(s / 3600) + " h ago";
		}
		if (s >= 60) {
			return Math.floor(s / 60) + " min ago";
		}
		return s + " s ago";
	}

	function pair(m) {
		return ((m && m.http) || 0) + " / " + ((m && m.rdp) || 0);
	}

	// put appends content to parent: text, an element, or a list of them.
	function put(parent, content) {
		if (Array.isArray(content)) {
			content.forEach(function (c) { put(parent, c); });
		} else if (typeof content === "string") {
			parent.appendChild(document.createTextNode(content));
		} else if (content) {
			parent.appendChild(content);
		}
		return parent;
	}

	function node(tag, className, content) {
		var e = document.createElement(tag);
		if (className) {
			e.className = className;
		}
		return put(e, content);
	}

	function cell(field, content) {
		var td = node("td", "", content);
		td.dataset.field = field;
		return td;
	}

	// number is a cell of numbers; value, when given, is the exact count
	// behind a rounded content.
	function number(field, content, value) {
		var td = cell(field, content);
		td.className = "num";
		if (value !== undefined) {
			td.dataset.value = String(value);
		}
		return td;
	}

	function row(name, cells) {
		var tr = node("tr", "", cells);
		tr.dataset.name = name;
		return tr;
	}

	function empty(columns, text) {
		var td = node("td", "", text);
		td.colSpan = columns;
		return node("tr", "empty", td);
	}

	function nameRow(n) {
		var upstreams = "—";
		if (n.upstreams && n.upstreams.length) {
			upstreams = node("ul", "", n.upstreams.map(function (u) {
				var li = node("li", "", [node("span", "address", u.address), " ", node("span", "health " + u.health, u.health)]);
				if (u.requests || u.fails) {
					put(li, [" ", node("small", "", u.requests + " in flight, " + u.fails + " failed")]);
				}
				return li;
			}));
		}
		var rdp = n.rdp_targets && n.rdp_targets.length ? n.rdp_targets.join(", ") : "—";
		return row(n.name, [
			cell("name", n.name),
			cell("kinds", (n.kinds || []).join(", ")),
			cell("defined_in", n.defined_in),
			cell("upstreams", upstreams),
			cell("rdp_targets", rdp),
		]);
	}

	function agentRow(a, now) {
		var state = [a.connected ? node("span", "state up", "● connected") : node("span", "state down", "○ not connected")];
		if (a.held_until) {
			state.push(" ", node("span", "held", "held out"));
		}
		var heard = "—";
		if (a.last_heard) {
			heard = [ago(now, parseTime(a.last_heard)), node("small", "", clock(parseTime(a.last_heard)))];
		}
		var tls = "—";
		if (a.connected) {
			tls = !a.tls ? "no TLS" : a.channel_binding ? "TLS, bound" : "TLS, not bound";
		}
		var refusal = "—";
		if (a.last_refusal) {
			var r = a.last_refusal;
			refusal = [node("span", "code", r.code), " " + r.reason, node("small", "", clock(parseTime(r.at)) + " from " + r.source)];
		}
		return row(a.name, [
			cell("name", [a.name, node("small", "", a.origin)]),
			cell("state", state),
			cell("address", a.address || "—"),
			cell("agent", a.agent || "—"),
			cell("since", a.since ? clock(parseTime(a.since)) : "—"),
			cell("last_heard", heard),
			cell("tls", tls),
			number("back_connections", String(a.back_connections), a.back_connections),
			number("sessions", pair(a.sessions)),
			number("sessions_total", pair(a.sessions_total)),
			number("requests", String(a.requests), a.requests),
			number("bytes_to_agent", bytes(a.bytes_to_agent), a.bytes_to_agent),
			number("bytes_from_agent", bytes(a.bytes_from_agent), a.bytes_from_agent),
			cell("last_refusal", refusal),
			cell("held_until", a.held_until ? clock(parseTime(a.held_until)) : "—"),
		]);
	}

	// fill replaces the rows of body, through a fragment: thousands of rows
	// are more arguments than a call may take.
	function fill(body, rows) {
		var f = document.createDocumentFragment();
		rows.forEach(function (r) { f.appendChild(r); });
		body.replaceChildren(f);
	}

	function render(st, now) {
		var ns = st.names || [], as = st.agents || [];
		fill(names, ns.length ? ns.map(nameRow) : [empty(5, "No names.")]);
		fill(agents, as.length ? as.map(function (a) { return agentRow(a, now); }) : [empty(15, "No back entries.")]);
		var connected = as.filter(function (a) { return a.connected; }).length;
		summary.textContent = "names: " + ns.length + ", back entries: " + as.length + ", agents connected: " + connected;
		readAt.textContent = clock(now);
		problem.textContent = "";
	}

	function refresh() {
		var started = performance.now(), took = 0;
		var abort = new AbortController();
		var timer = setTimeout(function () { abort.abort(new Error("no answer in " + timeout / 1000 + " s")); }, timeout);
		fetch(location.href, {headers: {Accept: "application/json"}, cache: "no-store", signal: abort.signal}).then(function (res) {
			if (!res.ok) {
				throw new Error(res.status + " " + res.statusText);
			}
			// The server's clock, so that "last heard" does not depend on this one.
			var now = Date.parse(res.headers.get("Date")) || Date.now();
			return res.json().then(function (st) {
				render(st, now);
				took = performance.now() - started;
			});
		}).catch(function (err) {
			problem.textContent = " · not updated: " + err.message;
		}).finally(function () {
			clearTimeout(timer);
			setTimeout(refresh, Math.min(longest, Math.max(period, slowdown * took)));
		});
	}

	setTimeout(refresh, period);
})();
