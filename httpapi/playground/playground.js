// The auditlog playground: runs GraphQL operations against /query with the
// bearer token kept in this tab's session storage. A #token=… fragment
// fills it in and is then removed from the address bar; fragments are never
// sent to the server.
(function () {
  "use strict";
  var KEY = "auditlog.token";
  var $ = function (id) { return document.getElementById(id); };
  var examples = {
    "Settings": "{\n  auditLogSettings { enabled region updatedAt updatedBy { name email } }\n}",
    "Latest events": "query($filter: AuditEventFilter) {\n  auditEvents(filter: $filter, first: 20) {\n    totalCount totalCountCapped\n    pageInfo { hasNextPage endCursor }\n    edges { node { id occurredAt type description source actor { name email } target { kind id name } } }\n  }\n}",
    "Enable audit logging (US)": "mutation {\n  enableAuditLog(region: US) { enabled region }\n}",
    "Event catalog": "{\n  auditEventTypes { type category description fields { name type required } }\n}",
    "Export to CSV": "mutation {\n  startAuditExport(format: CSV) { id status }\n}",
    "Recent exports": "{\n  auditExports(first: 5) { id status rowCount downloadUrl expiresAt }\n}"
  };

  var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  $("token").value = sessionStorage.getItem(KEY) || "";
  $("token").addEventListener("change", function () { sessionStorage.setItem(KEY, $("token").value.trim()); });
  $("forget").addEventListener("click", function () { sessionStorage.removeItem(KEY); $("token").value = ""; });

  var select = $("examples");
  var first = true;
  Object.keys(examples).forEach(function (name) {
    var o = document.createElement("option");
    o.value = name; o.textContent = name;
    select.appendChild(o);
    if (first) { $("query").value = examples[name]; first = false; }
  });
  select.addEventListener("change", function () { $("query").value = examples[select.value]; });

  function run() {
    var variables;
    try { variables = JSON.parse($("variables").value || "{}"); } catch (e) {
      show("Variables are not valid JSON: " + e.message, true); return;
    }
    var headers = { "Content-Type": "application/json", "Accept": "application/graphql-response+json, application/json" };
    var token = $("token").value.trim();
    if (token) { headers["Authorization"] = "Bearer " + token; }
    $("status").textContent = "Running…";
    var started = performance.now();
    fetch("query", { method: "POST", headers: headers, body: JSON.stringify({ query: $("query").value, variables: variables }) })
      .then(function (r) {
        return r.text().then(function (text) {
          var ms = Math.round(performance.now() - started);
          $("status").textContent = r.status + " in " + ms + " ms";
          try { text = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON: show as is */ }
          show(text, !r.ok || /"errors"/.test(text));
        });
      })
      .catch(function (e) { $("status").textContent = ""; show("Request failed: " + e.message, true); });
  }
  function show(text, isError) {
    $("response").textContent = text;
    $("response").className = isError ? "error" : "";
  }
  $("run").addEventListener("click", run);
  document.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); run(); }
  });
})();
