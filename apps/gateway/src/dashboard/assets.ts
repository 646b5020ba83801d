/**
 * The dashboard's only stylesheet and script, served from /dashboard/assets so the Content-Security-
 * Policy can forbid inline code. No framework: the pages work without the script except for the
 * copy button, live progress and the "try it" key switch.
 */
export const CSS = `
:root { --fg:#1c1e21; --muted:#5f6670; --line:#dde1e6; --bg:#f5f6f8; --card:#fff; --accent:#c2410c; --accent-dark:#9a3412;
  --ok:#15803d; --bad:#b91c1c; --warn:#a16207; --radius:8px; color-scheme: light; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin:0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color:var(--fg); background:var(--bg); }
a { color: var(--accent-dark); }
code, pre, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 13px; }
header.top { background:#1f2328; color:#fff; }
header.top .inner { max-width:1200px; margin:0 auto; padding:10px 20px; display:flex; align-items:center; gap:20px; flex-wrap:wrap; }
header.top .brand { font-weight:700; font-size:18px; color:#fff; text-decoration:none; letter-spacing:.02em; }
header.top .brand span { color:#fb923c; }
header.top nav { display:flex; gap:4px; flex-wrap:wrap; flex:1; }
header.top nav a { color:#d0d7de; text-decoration:none; padding:6px 10px; border-radius:6px; }
header.top nav a[aria-current="page"], header.top nav a:hover { background:#373e47; color:#fff; }
header.top form { margin:0 0 0 auto; }
header.top button { background:transparent; color:#d0d7de; border:1px solid #57606a; padding:5px 10px; border-radius:6px; cursor:pointer; font:inherit; }
main { max-width:1200px; margin:0 auto; padding:20px; }
h1 { font-size:24px; margin:4px 0 16px; }
h2 { font-size:18px; margin:0 0 12px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:var(--radius); padding:18px 20px; margin-bottom:20px; }
.muted { color:var(--muted); }
.sr-only { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); white-space:nowrap; }
.small { font-size:13px; }
.notice { border-left:4px solid var(--ok); background:#f0fdf4; padding:10px 14px; border-radius:6px; margin-bottom:16px; }
.error { border-left:4px solid var(--bad); background:#fef2f2; padding:10px 14px; border-radius:6px; margin-bottom:16px; }
.secret { border:2px solid var(--accent); background:#fff7ed; }
.secret .keyline { display:flex; gap:8px; align-items:stretch; flex-wrap:wrap; margin:10px 0; }
.secret .keyline code { flex:1 1 320px; display:block; padding:10px 12px; background:#fff; border:1px solid var(--line); border-radius:6px; word-break:break-all; font-size:14px; }
label { display:block; font-weight:600; font-size:14px; margin-bottom:4px; }
.hint { display:block; font-weight:400; color:var(--muted); font-size:12px; }
input[type=text], input[type=password], input[type=number], input[type=file], select {
  width:100%; padding:8px 10px; border:1px solid #c4cad1; border-radius:6px; font:inherit; background:#fff; min-height:38px; }
input:focus, select:focus, button:focus, a:focus { outline:3px solid #fdba74; outline-offset:1px; }
.grid { display:grid; grid-template-columns:repeat(auto-fill, minmax(230px, 1fr)); gap:14px 18px; margin-bottom:14px; }
.grid .wide { grid-column:1 / -1; }
fieldset { border:1px solid var(--line); border-radius:6px; padding:12px 14px 4px; margin:0 0 14px; }
legend { font-weight:600; padding:0 6px; }
button, .button { display:inline-block; background:var(--accent); color:#fff; border:0; border-radius:6px; padding:9px 16px; font:inherit; font-weight:600; cursor:pointer; text-decoration:none; min-height:38px; }
button:hover, .button:hover { background:var(--accent-dark); }
button.secondary, .button.secondary { background:#fff; color:var(--fg); border:1px solid #c4cad1; }
button.danger, .button.danger { background:var(--bad); }
.actions { display:flex; gap:10px; flex-wrap:wrap; align-items:center; }
.filters { display:flex; gap:12px; flex-wrap:wrap; align-items:flex-end; }
.filters > div { min-width:180px; }
.row-actions { display:flex; gap:10px; align-items:center; flex-wrap:nowrap; }
.row-actions .button { padding:5px 12px; min-height:32px; font-size:14px; }
.table-wrap { overflow-x:auto; }
table { width:100%; border-collapse:collapse; font-size:14px; }
th, td { text-align:left; padding:9px 10px; border-bottom:1px solid var(--line); vertical-align:top; }
th { font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); font-weight:600; }
tr.revoked td { color:var(--muted); }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px; font-weight:600; background:#eef1f4; color:var(--muted); white-space:nowrap; }
.badge.completed, .badge.active { background:#dcfce7; color:var(--ok); }
.badge.failed, .badge.revoked { background:#fee2e2; color:var(--bad); }
.badge.processing { background:#fef9c3; color:var(--warn); }
.badge.pending { background:#e0e7ff; color:#3730a3; }
progress { width:110px; height:10px; vertical-align:middle; accent-color: var(--accent); }
pre.cmd { background:#1f2328; color:#e6edf3; padding:14px; border-radius:6px; overflow-x:auto; white-space:pre-wrap; word-break:break-all; }
.login { max-width:380px; margin:8vh auto; }
.login.narrow, .narrow { max-width:640px; }
.field { margin-bottom:14px; }
.hint.inline { display:inline; }
dl.facts dd.error { margin:0; }
.pager { display:flex; gap:10px; margin-top:12px; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; }
@media (max-width: 720px) {
  main { padding:12px; }
  header.top .inner { padding:8px 12px; gap:8px; }
  header.top nav { order:3; flex-basis:100%; }
  .card { padding:14px; }
  .grid { grid-template-columns:1fr; }
  table.stack thead { display:none; }
  table.stack, table.stack tbody, table.stack tr, table.stack td { display:block; width:100%; }
  table.stack tr { border:1px solid var(--line); border-radius:6px; margin-bottom:10px; padding:6px 10px; background:#fff; }
  table.stack td { border:0; padding:3px 0 3px 42%; position:relative; min-height:26px; word-break:break-word; }
  table.stack td::before { content:attr(data-label); position:absolute; left:0; width:40%; color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.03em; padding-top:2px; }
  .filters > div { flex:1 1 100%; }
  dl.facts { grid-template-columns:1fr; }
  dl.facts dd { margin-bottom:6px; }
}
`;

export const JS = `
(function () {
  'use strict';
  function copyText(text, button) {
    var done = function () { var old = button.textContent; button.textContent = 'Copied'; setTimeout(function () { button.textContent = old; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, fallback); } else { fallback(); }
    function fallback() {
      var ta = document.createElement('textarea'); ta.value = text; ta.setAttribute('readonly', ''); ta.style.position = 'fixed'; ta.style.opacity = '0';
      document.body.appendChild(ta); ta.select(); try { document.execCommand('copy'); done(); } catch (e) { /* the key stays selectable */ } document.body.removeChild(ta);
    }
  }
  document.querySelectorAll('[data-copy-target]').forEach(function (b) {
    b.hidden = false;
    b.addEventListener('click', function () { var t = document.getElementById(b.getAttribute('data-copy-target')); if (t) copyText(t.textContent.trim(), b); });
  });

  var FINAL = { completed: true, failed: true };
  function paint(row, j) {
    var st = row.querySelector('[data-field=status]');
    if (st) { st.textContent = j.status; st.className = 'badge ' + j.status; }
    var p = row.querySelector('progress'); if (p) { p.value = j.progress; p.textContent = j.progress + '%'; }
    var pt = row.querySelector('[data-field=progress]'); if (pt) pt.textContent = j.progress + '%';
    var f = row.querySelector('[data-field=files]'); if (f && j.totalFiles !== undefined) f.textContent = j.completedFiles + ' ok, ' + j.failedFiles + ' failed of ' + j.totalFiles;
  }

  var list = document.querySelector('[data-live-jobs]');
  if (list) {
    var tickList = function () {
      var rows = Array.prototype.slice.call(list.querySelectorAll('tr[data-job-id]')).filter(function (r) { return !FINAL[r.getAttribute('data-status')]; });
      if (!rows.length) return;
      var ids = rows.map(function (r) { return r.getAttribute('data-job-id'); }).join(',');
      fetch('/dashboard/api/jobs?ids=' + encodeURIComponent(ids), { credentials: 'same-origin', headers: { accept: 'application/json' } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (body) {
          if (!body) return;
          body.jobs.forEach(function (j) { var row = list.querySelector('tr[data-job-id="' + j.jobId + '"]'); if (row) { row.setAttribute('data-status', j.status); paint(row, j); } });
          setTimeout(tickList, 1000);
        }, function () { setTimeout(tickList, 3000); });
    };
    setTimeout(tickList, 1000);
  }

  // One job's page follows the job over Server-Sent Events (GET /dashboard/jobs/:id/events): the
  // browser reconnects by itself with Last-Event-ID, and the page is updated in place, never reloaded.
  var one = document.querySelector('[data-live-job]');
  if (one && !FINAL[one.getAttribute('data-status')] && window.EventSource) {
    var id = one.getAttribute('data-live-job');
    var field = function (root, name) { return root.querySelector('[data-field=' + name + ']'); };
    var text = function (el, value) { if (el) el.textContent = value; };
    var bytes = function (n) {
      if (n === null || n === undefined) return '\u2014';
      if (n < 1024) return n + ' B';
      if (n < 1048576) return (n / 1024).toFixed(1) + ' KB';
      if (n < 1073741824) return (n / 1048576).toFixed(1) + ' MB';
      return (n / 1073741824).toFixed(2) + ' GB';
    };
    var when = function (iso) { return iso ? new Date(iso).toISOString().replace('T', ' ').slice(0, 16) + ' UTC' : ''; };
    var show = function (el, on) { if (!el) return; el.hidden = !on; if (el.previousElementSibling && el.previousElementSibling.tagName === 'DT') el.previousElementSibling.hidden = !on; };
    var paintFile = function (f) {
      var row = document.querySelector('tr[data-file-index="' + f.index + '"]');
      if (!row) return;
      var st = field(row, 'status'); if (st) { st.textContent = f.status; st.className = 'badge ' + f.status; }
      var pr = field(row, 'progress'); if (pr) { pr.textContent = f.progress + '%'; pr.hidden = f.status !== 'processing'; }
      if (!FINAL[f.status]) return;
      text(field(row, 'filename'), f.filename);
      var out = field(row, 'output');
      if (out) { out.textContent = f.format || '\u2014'; if (f.width) { var dim = document.createElement('span'); dim.className = 'muted'; dim.textContent = f.width + '\u00d7' + f.height; out.append(' ', dim); } }
      var size = field(row, 'size');
      if (size) { size.textContent = bytes(f.originalSize) + ' \u2192 ' + bytes(f.finalSize); if (f.savedPercent) { var sv = document.createElement('span'); sv.className = 'muted'; sv.textContent = '(\u2212' + f.savedPercent + '%)'; size.append(' ', sv); } }
      var res = field(row, 'result');
      if (res) {
        res.textContent = '';
        if (f.downloadUrl) { var a = document.createElement('a'); a.href = f.downloadUrl; a.setAttribute('download', ''); a.textContent = 'Download'; res.append(a); }
        if (f.error) { var b = document.createElement('span'); b.className = 'badge failed'; b.textContent = f.error.code; res.append(b, ' ' + f.error.message); }
      }
    };
    var paintJob = function (j) {
      paint(one, j);
      if (j.results) j.results.forEach(paintFile);
      if (j.files) j.files.forEach(function (f) { var row = document.querySelector('tr[data-file-index="' + f.index + '"]'); if (row && !FINAL[f.status]) paintFile(f); });
      if (j.completedAt) text(field(one, 'completedAt'), when(j.completedAt));
      if (j.expiresAt) text(field(one, 'expiresAt'), when(j.expiresAt));
      if (j.errorMessage !== undefined) { var em = field(one, 'errorMessage'); text(em, j.errorMessage || ''); show(em, !!j.errorMessage); }
      if (j.archive) {
        var ar = field(one, 'archive');
        if (ar) { ar.textContent = ''; var l = document.createElement('a'); l.href = j.archive.downloadUrl; l.setAttribute('download', ''); l.textContent = j.archive.filename; ar.append(l, ' (' + bytes(j.archive.size) + ')'); show(ar, true); }
      }
    };
    var es = new EventSource('/dashboard/jobs/' + encodeURIComponent(id) + '/events');
    var on = function (name, fn) { es.addEventListener(name, function (e) { fn(JSON.parse(e.data)); }); };
    on('snapshot', paintJob);
    on('progress', paintJob);
    on('file', paintFile);
    ['completed', 'failed'].forEach(function (name) {
      on(name, function (j) { es.close(); paintJob(j); one.setAttribute('data-status', j.status); });
    });
  }

  var tryForm = document.querySelector('form[data-try]');
  if (tryForm) {
    var keySel = tryForm.querySelector('select[name=key]');
    var fmtSel = tryForm.querySelector('select[name=format]');
    var fileIn = tryForm.querySelector('input[type=file]');
    var cmd = document.getElementById('curl');
    var base = tryForm.getAttribute('data-base');
    var update = function () {
      var opt = keySel.options[keySel.selectedIndex];
      tryForm.action = '/dashboard/try?key=' + encodeURIComponent(keySel.value);
      var name = fileIn.files && fileIn.files[0] ? fileIn.files[0].name : 'photo.png';
      var quoted = /^[\\w.\\-]+$/.test(name) ? name : "'" + name.replace(/'/g, "'\\\\''") + "'";
      cmd.textContent = 'KEY=' + (opt ? opt.getAttribute('data-prefix') : 'kiln_') + '…   # the full key, shown once when it was created\\n' +
        'curl -H "Authorization: Bearer $KEY" -F files=@' + quoted + ' -F format=' + fmtSel.value + ' \\\\\\n     ' + base + '/api/jobs';
    };
    [keySel, fmtSel, fileIn].forEach(function (el) { el.addEventListener('change', update); });
    update();
  }
})();
`;
