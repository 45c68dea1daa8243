// Portico console: sends the page's forms and row buttons to the APIs on this host
// (JSON, with the session's CSRF token), shows the answers in #result or #error, refreshes
// the lists marked data-refresh, filters the device tree and keeps device states current.
"use strict";
(function () {
  document.documentElement.classList.add("js");

  var RS = "/api/remoteservices/v1";
  var IDENTITY = "/api/identity/v1";
  // The operator's registry actions: console routes on this host that go on to the
  // registry API in-process.
  var REGISTRY = "/registry/api";

  function cookie(name) {
    var parts = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf("=");
      if (parts[i].slice(0, eq) === name) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return "";
  }

  function enc(s) { return encodeURIComponent(s); }

  // One API call; resolves to the parsed answer (or null), rejects with a readable message.
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    if (method !== "GET") headers["X-XSRF-TOKEN"] = cookie("XSRF-TOKEN");
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method: method,
      headers: headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var value = null;
        try { value = text ? JSON.parse(text) : null; } catch (e) { value = text; }
        if (!response.ok) {
          var message = value && value.message ? value.message : (typeof value === "string" && value ? value : response.statusText);
          throw new Error(response.status + ": " + message);
        }
        return value;
      });
    });
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function show(nodes) {
    var result = document.getElementById("result");
    var error = document.getElementById("error");
    error.textContent = "";
    result.textContent = "";
    (Array.isArray(nodes) ? nodes : [nodes]).forEach(function (n) {
      result.appendChild(typeof n === "string" ? document.createTextNode(n) : n);
    });
  }

  function fail(err) {
    document.getElementById("result").textContent = "";
    document.getElementById("error").textContent = err && err.message ? err.message : String(err);
  }

  // Re-reads this page and swaps in the fresh copy of every element marked data-refresh.
  function refresh() {
    return fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-refresh][id]").forEach(function (old) {
          var replacement = fresh.getElementById(old.id);
          // Gone from the fresh page (an "empty" note once a list has items): hide it.
          if (!replacement) { old.hidden = true; return; }
          var node = document.importNode(replacement, true);
          // A choice list keeps what the user chose, when it is still offered.
          if (old.tagName === "SELECT" && old.value) {
            for (var i = 0; i < node.options.length; i++) {
              if (node.options[i].value === old.value) node.value = old.value;
            }
          }
          old.replaceWith(node);
        });
      })
      .catch(function () { /* the next action or reload shows the lists again */ });
  }

  function value(form, name) {
    var field = form.elements.namedItem(name);
    return field && field.value !== undefined ? field.value.trim() : "";
  }

  function optional(body, key, v) { if (v !== "") body[key] = v; return body; }

  function words(s) { return s.split(/[\s,]+/).filter(function (w) { return w !== ""; }); }

  function int(form, name) {
    var v = value(form, name);
    return v === "" ? undefined : Number(v);
  }

  // API routes from a text area: one a line, a path pattern followed by its methods.
  function routes(text) {
    return text.split("\n").map(words).filter(function (w) { return w.length > 0; })
      .map(function (w) { return { pattern: w[0], methods: w.slice(1).map(function (m) { return m.toUpperCase(); }) }; });
  }

  // A ready command line for a service-side listener, by the application's template (or,
  // for a generic one, by the target's well-known port).
  function readyCommand(template, l) {
    var port = l.local_port;
    if (template === "ssh" || (template === "tcp" && l.target_port === 22)) return "ssh -p " + port + " localhost";
    if (template === "rdp") return "xfreerdp /v:localhost:" + port;
    if (template === "vnc") return "vncviewer localhost::" + port;
    if (template === "telnet") return "telnet localhost " + port;
    if (template === "http") return "http://localhost:" + port + "/";
    if (template === "https") return "https://localhost:" + port + "/";
    return "localhost:" + port + " \u2192 " + l.target_host + ":" + l.target_port;
  }

  // The answer of a connect: how to use each listener.
  function connectionResult(answer, template) {
    var nodes = [el("p", {}, ["Connection session ", el("code", { "class": "session-id" }, [answer.id]), " is open."])];
    (answer.listeners || []).forEach(function (l) {
      if (l.side === "device") {
        nodes.push(el("p", { "class": "listener" }, [
          "The device's endpoint listens on ",
          el("code", { "class": "command" }, ["localhost:" + l.local_port]),
          " on the device side; what connects there reaches " + l.target_host + ":" + l.target_port + "."
        ]));
      } else {
        var command = readyCommand(template, l);
        nodes.push(el("p", { "class": "listener" }, ["Use ", el("code", { "class": "command" }, [command])]));
      }
    });
    if (template === "http" || template === "https") {
      // Section 3 of the host scheme: the console's first label `{tenant}-console` becomes
      // `{tenant}-remote-{id}`; scheme and port stay.
      var host = location.host.replace(/^([^.]*)console\./, "$1remote-" + answer.id + ".");
      var href = location.protocol + "//" + host + "/";
      nodes.push(el("p", {}, [el("a", { "class": "open-in-browser", href: href, target: "_blank", rel: "noopener" }, ["Open in the browser"])]));
    }
    return nodes;
  }

  // What each form sends: [method, path, body]; `then` turns the answer into #result.
  var forms = {
    "assign": function (f) {
      return [ "POST", RS + "/assignments", { device: value(f, "device"), application: value(f, "application") } ];
    },
    "create-application": function (f) {
      var body = {
        name: value(f, "name"),
        label: value(f, "label"),
        template: value(f, "template"),
        mappings: [{ local_port: int(f, "local_port"), target_host: value(f, "target_host"), target_port: int(f, "target_port") }]
      };
      optional(body, "target_endpoint", value(f, "target_endpoint"));
      if (int(f, "session_timeout_s") !== undefined) body.session_timeout_s = int(f, "session_timeout_s");
      return [ "POST", RS + "/applications", body ];
    },
    "add-site": function (f) {
      return [ "POST", RS + "/sites", optional({ name: value(f, "name") }, "parent", value(f, "parent")) ];
    },
    "add-device": function (f) {
      return [ "POST", RS + "/devices", { name: value(f, "name"), site: value(f, "site"), description: value(f, "description") } ];
    },
    "set-member": function (f) {
      return [ "POST", RS + "/members", { site: value(f, "site"), user: value(f, "user_name"), role: value(f, "role") } ];
    },
    "add-user": function (f) {
      return [ "POST", IDENTITY + "/users", { name: value(f, "name"), role: value(f, "role"), password: f.elements.namedItem("password").value } ];
    },
    "add-endpoint": function (f) {
      var body = { name: value(f, "name"), kind: value(f, "kind") };
      ["device", "site", "user"].forEach(function (k) { optional(body, k, value(f, k)); });
      return [ "POST", RS + "/endpoints", body, function (answer) {
        return [ "Endpoint " + answer.endpoint.name + " created. Its one-time registration code (shown once): ",
          el("code", { "class": "registration-code" }, [answer.registration_code]) ];
      } ];
    },
    "add-tenant": function (f) {
      return [ "POST", REGISTRY + "/tenants", { name: value(f, "name") } ];
    },
    "add-webapp": function (f) {
      var body = { name: value(f, "name"), backend: value(f, "backend"), auth: value(f, "auth"),
        scopes: words(value(f, "scopes")), tenants: words(value(f, "tenants")), websockets: words(value(f, "websockets")) };
      optional(body, "provider", value(f, "provider"));
      optional(body, "cache_control", value(f, "cache_control"));
      return [ "POST", REGISTRY + "/webapps", body ];
    },
    "add-api": function (f) {
      var body = { name: value(f, "name"), version: int(f, "version"), backend: value(f, "backend"),
        routes: routes(value(f, "routes")), auth: value(f, "auth"), scopes: words(value(f, "scopes")),
        tenants: words(value(f, "tenants")) };
      optional(body, "provider", value(f, "provider"));
      return [ "POST", REGISTRY + "/apis", body ];
    },
    "add-client": function (f) {
      var confidential = f.elements.namedItem("confidential").checked;
      var body = { name: value(f, "name"), confidential: confidential, grant_types: words(value(f, "grant_types")),
        scopes: words(value(f, "scopes")), redirect_uris: words(value(f, "redirect_uris")) };
      return [ "POST", IDENTITY + "/clients", body, function (answer) {
        var nodes = [ "Client ", el("code", { "class": "client-id" }, [answer.client_id]), " created." ];
        if (answer.client_secret) {
          nodes.push(" Its secret (shown once): ", el("code", { "class": "client-secret" }, [answer.client_secret]));
        }
        return nodes;
      } ];
    }
  };

  var buttons = {
    "connect": function (b) {
      var template = b.getAttribute("data-template");
      return [ "POST", RS + "/connections", { device: b.getAttribute("data-device"), application: b.getAttribute("data-app") },
        function (answer) { return connectionResult(answer, template); } ];
    },
    "end": function (b) { return [ "DELETE", RS + "/connections/" + enc(b.getAttribute("data-connection")) ]; },
    "revoke": function (b) { return [ "POST", RS + "/endpoints/" + enc(b.getAttribute("data-endpoint")) + "/revoke" ]; },
    "remove-user": function (b) { return [ "DELETE", IDENTITY + "/users/" + enc(b.getAttribute("data-user")) ]; },
    "remove-client": function (b) { return [ "DELETE", IDENTITY + "/clients/" + enc(b.getAttribute("data-client")) ]; },
    "remove-tenant": function (b) { return [ "DELETE", REGISTRY + "/tenants/" + enc(b.getAttribute("data-tenant")) ]; },
    "remove-webapp": function (b) { return [ "DELETE", REGISTRY + "/webapps/" + enc(b.getAttribute("data-webapp")) ]; },
    "remove-api": function (b) {
      return [ "DELETE", REGISTRY + "/apis/" + enc(b.getAttribute("data-api")) + "/v" + enc(b.getAttribute("data-version")) ];
    }
  };

  function run(call, control, form) {
    var method = call[0], path = call[1], body = call[2], render = call[3];
    control.disabled = true;
    api(method, path, body)
      .then(function (answer) {
        show(render ? render(answer) : (form || control).getAttribute("data-done") || "Done.");
        if (form && !render) form.reset();
        return refresh();
      })
      .catch(fail)
      .then(function () { control.disabled = false; });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var action = form.getAttribute("data-action");
    if (!action || !forms[action]) return;
    event.preventDefault();
    run(forms[action](form), form.querySelector("button[type=submit]") || form, form);
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (button && buttons[button.getAttribute("data-action")]) {
      run(buttons[button.getAttribute("data-action")](button), button, null);
      return;
    }
    var menu = event.target.closest("button.menu");
    if (menu) {
      var nav = document.getElementById(menu.getAttribute("aria-controls"));
      var open = nav.classList.toggle("open");
      menu.setAttribute("aria-expanded", open ? "true" : "false");
    }
  });

  // Devices: the search box hides devices and sites that do not match (a site stays when
  // it or anything below it matches).
  function filterTree(term) {
    term = term.trim().toLowerCase();
    function visit(li) {
      var own = (li.getAttribute("data-site") || li.getAttribute("data-device") || "").toLowerCase();
      var text = own + " " + (li.getAttribute("data-description") || "").toLowerCase();
      var childMatch = false;
      li.querySelectorAll(":scope > ul > li").forEach(function (child) { if (visit(child)) childMatch = true; });
      var match = term === "" || text.indexOf(term) >= 0 || childMatch;
      li.hidden = !match;
      return match;
    }
    document.querySelectorAll("#tree > li").forEach(visit);
  }

  function setState(span, online) {
    span.setAttribute("data-online", online ? "true" : "false");
    span.textContent = online ? "online" : "offline";
  }

  function pollDevices() {
    api("GET", RS + "/devices").then(function (devices) {
      (devices || []).forEach(function (d) {
        document.querySelectorAll("#tree li[data-device]").forEach(function (li) {
          if (li.getAttribute("data-device") === d.name) {
            var span = li.querySelector(".state");
            if (span) setState(span, d.online === true);
          }
        });
      });
    }).catch(function () { /* a passing failure: the next poll tries again */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var search = document.getElementById("search");
    if (search) search.addEventListener("input", function () { filterTree(search.value); });
    if (document.getElementById("tree")) setInterval(pollDevices, 3000);
  });
})();
