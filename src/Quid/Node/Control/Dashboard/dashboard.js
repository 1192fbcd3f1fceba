// The node's dashboard: reads the control API once a second and draws what it says. The token
// (the control cookie in hex) arrives in the link's #fragment, which browsers never send to a
// server; it is kept for this tab only and taken out of the address bar.
'use strict';

const tokenKey = 'quid-control-token';
const $ = (id) => document.getElementById(id);
let token = null;
let timer = null;

function takeTokenFromLink() {
  const match = /token=([0-9a-fA-F]{64})/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(tokenKey, match[1].toLowerCase());
    history.replaceState(null, '', location.pathname);
  }
  return sessionStorage.getItem(tokenKey);
}

class Unauthorized extends Error {}

async function api(path) {
  const response = await fetch(path, { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
  if (response.status === 401) throw new Unauthorized();
  if (!response.ok) throw new Error(path + ' answered ' + response.status);
  return response.json();
}

// ---- Numbers as people read them ----

function rate(bytesPerSecond) {
  const bits = bytesPerSecond * 8;
  if (bits >= 1e9) return (bits / 1e9).toFixed(2) + ' Gbit/s';
  if (bits >= 1e6) return (bits / 1e6).toFixed(2) + ' Mbit/s';
  if (bits >= 1e3) return (bits / 1e3).toFixed(0) + ' kbit/s';
  return bits.toFixed(0) + ' bit/s';
}

function bytes(n) {
  if (n >= 2 ** 30) return (n / 2 ** 30).toFixed(1) + ' GiB';
  if (n >= 2 ** 20) return (n / 2 ** 20).toFixed(1) + ' MiB';
  if (n >= 2 ** 10) return (n / 2 ** 10).toFixed(1) + ' KiB';
  return n + ' B';
}

function kbps(n) {
  if (!n) return '–';
  return n >= 1024 && n % 1024 === 0 ? (n / 1024) + ' Mbit/s' : n + ' kbit/s';
}

function age(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  if (seconds >= 86400) return Math.floor(seconds / 86400) + 'd ' + Math.floor(seconds % 86400 / 3600) + 'h';
  if (seconds >= 3600) return Math.floor(seconds / 3600) + 'h ' + Math.floor(seconds % 3600 / 60) + 'm';
  if (seconds >= 60) return Math.floor(seconds / 60) + 'm ' + (seconds % 60) + 's';
  return seconds + 's';
}

const brief = (id) => id.slice(0, 8);

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function svg(tag, attributes) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [name, value] of Object.entries(attributes)) e.setAttribute(name, value);
  return e;
}

// ---- Drawing ----

function showStatus(s) {
  $('node-id').textContent = brief(s.id);
  $('node-id').title = s.id;
  $('node-role').textContent = s.role.toLowerCase();
  $('node-uptime').textContent = 'up ' + age(s.uptimeSeconds);
  $('phase-text').textContent = s.phaseText;
  $('phase').classList.toggle('ready', s.phase === 'Ready');

  $('rate-received').textContent = rate(s.rates.receivedBytesPerSecond);
  $('rate-given').textContent = rate(s.rates.givenBytesPerSecond);
  $('total-received').textContent = bytes(s.rates.receivedBytes) + ' in all';
  $('total-given').textContent = bytes(s.rates.givenBytes) + ' in all';
  if (s.requestKbps == null) {
    $('request').textContent = 'donor';
    $('request-detail').textContent = 'asks for nothing in return';
  } else {
    $('request').textContent = s.requestMet ? 'met' : 'searching';
    $('request-detail').textContent = 'you asked ' + kbps(s.requestKbps) + '; partners grant ' + (s.receivedGrantKbps ? kbps(s.receivedGrantKbps) : 'nothing yet');
  }
  $('network').textContent = s.neighbours + (s.neighbours === 1 ? ' link' : ' links');
  $('network-detail').textContent = s.agreements + ' agreements · ' + s.knownPeers + ' nodes known';
  $('network').title = s.reachability.text;

  showOffer(s);
}

function showOffer(s) {
  $('offer-summary').textContent = kbps(s.offerKbps) + ' offered: ' + kbps(s.grantedKbps) + ' granted, ' + kbps(s.freeKbps) + ' free, in buddy blocks of 16·2^k kbit/s';
  $('offer-max').textContent = kbps(s.offerKbps);
  const bar = $('offer-bar');
  bar.replaceChildren(...s.offerBlocks.map((b) => {
    const block = element('div', 'block ' + b.state.toLowerCase());
    block.style.flexGrow = String(b.kbps);
    block.style.flexBasis = '0';
    block.title = kbps(b.kbps) + ' ' + b.state.toLowerCase() + (b.partner ? ' to ' + b.partner : '');
    block.append(element('span', 'size', kbps(b.kbps)));
    if (b.partner) block.append(element('span', 'who', brief(b.partner)));
    return block;
  }));
}

function showChart(samples) {
  const chart = $('chart');
  const width = 900, height = 240, left = 70, bottom = 20, top = 10;
  const plotWidth = width - left, plotHeight = height - bottom - top;
  // The last five minutes; a node younger than a minute gets its first minute spread out.
  const span = samples.length > 60 ? 300 : 60;
  const recent = samples.slice(-span);
  const peak = Math.max(1000 / 8, ...recent.map((p) => Math.max(p.receivedBytesPerSecond, p.givenBytesPerSecond)));
  const x = (i) => left + plotWidth * (span - recent.length + i) / (span - 1);
  const y = (v) => top + plotHeight * (1 - v / peak);

  const parts = [];
  for (let i = 0; i <= 4; i++) {
    const value = peak * i / 4;
    parts.push(svg('line', { class: 'grid', x1: left, x2: width, y1: y(value), y2: y(value) }));
    const label = svg('text', { class: 'tick', x: left - 6, y: y(value) + 4, 'text-anchor': 'end' });
    label.textContent = rate(value);
    parts.push(label);
  }
  for (let i = 5; i >= 0; i--) {
    const ago = span * i / 5;
    const label = svg('text', { class: 'tick', x: left + plotWidth * (1 - ago / span), y: height - 4, 'text-anchor': i === 5 ? 'start' : i === 0 ? 'end' : 'middle' });
    label.textContent = i === 0 ? 'now' : '−' + (span >= 300 ? ago / 60 + ' min' : ago + ' s');
    parts.push(label);
  }
  for (const [name, key] of [['given', 'givenBytesPerSecond'], ['received', 'receivedBytesPerSecond']]) {
    if (recent.length < 2) continue;
    const points = recent.map((p, i) => x(i).toFixed(1) + ',' + y(p[key]).toFixed(1));
    parts.push(svg('path', { class: 'area ' + name, d: 'M' + x(0) + ',' + y(0) + ' L' + points.join(' L') + ' L' + x(recent.length - 1) + ',' + y(0) + ' Z' }));
    parts.push(svg('polyline', { class: name, points: points.join(' ') }));
  }
  chart.replaceChildren(...parts);
}

function showPartners(rows) {
  const body = $('partners').tBodies[0];
  body.replaceChildren(...rows.map((r) => {
    const row = element('tr', r.activeAgreements > 0 ? '' : 'past');
    const id = element('td', 'mono', brief(r.partner));
    id.title = r.partner;
    const verdict = element('td');
    verdict.append(element('span', 'verdict ' + r.verdict.toLowerCase(), r.verdict === 'Underdelivering' ? 'under-delivering' : r.verdict.toLowerCase()));
    row.append(id, verdict,
      element('td', 'num', kbps(r.weGrantKbps)),
      element('td', 'num', kbps(r.promisedKbps)),
      element('td', 'num', r.deliveredKbps == null ? 'not probed' : Math.round(r.deliveredKbps) + ' kbit/s'),
      element('td', 'num', bytes(r.bytesGiven)),
      element('td', 'num', bytes(r.bytesReceived)));
    return row;
  }));
  $('partners-empty').hidden = rows.length > 0;
}

function showCircuits(report) {
  $('circuit-hops').textContent = report.hops + (report.hops === 1 ? ' hop' : ' hops') + ' each';
  $('circuits').replaceChildren(...report.circuits.map((c) => {
    const item = element('li');
    item.append(element('span', 'hop you', 'you'));
    c.path.forEach((hop, i) => {
      item.append(element('span', 'arrow', '→'));
      const chip = element('span', i === c.path.length - 1 ? 'hop exit' : 'hop', brief(hop) + (i === c.path.length - 1 ? ' · exit' : ''));
      chip.title = hop;
      item.append(chip);
    });
    item.append(element('span', 'meta', c.streams + (c.streams === 1 ? ' stream' : ' streams') + ' · ' + age((Date.now() - Date.parse(c.created)) / 1000)));
    return item;
  }));
  $('circuits-empty').hidden = report.circuits.length > 0;
  $('carried').textContent = 'Carrying for others: ' + report.relayed + ' as a middle hop, ' + report.exiting + ' as the exit, '
    + report.carriedStreams + ' streams. Who built them is not shown.';
}

let shownServices = null;

function showServices(services) {
  // Redrawn only when something changed, so that an address being selected stays selected.
  const key = JSON.stringify(services.map((s) => [s.name, s.kind, s.address, s.published, s.introductionPointsUp, s.met]));
  if (key === shownServices) return;
  shownServices = key;
  $('services').tBodies[0].replaceChildren(...services.map((s) => {
    const row = element('tr');
    const address = element('td', 'address');
    const copyable = element('div');
    copyable.append(element('span', 'mono', s.address));
    const copy = element('button', '', 'copy');
    copy.type = 'button';
    copy.title = 'Copy the address';
    copy.addEventListener('click', () => navigator.clipboard.writeText(s.address).then(() => { copy.textContent = 'copied'; }));
    copyable.append(copy);
    address.append(copyable);
    if (s.addressUntil) address.title = 'This address holds until ' + new Date(s.addressUntil).toLocaleString() + '; then the next day\'s takes over.';
    const kind = element('td');
    kind.append(element('span', 'kind', s.kind.toLowerCase()));
    row.append(element('td', '', s.name), kind, address,
      element('td', 'num', s.published ? s.introductionPointsUp + ' up' : 'not yet published'),
      element('td', 'num', String(s.met)));
    return row;
  }));
  $('services').hidden = services.length === 0;
  $('services-empty').hidden = services.length > 0;
}

let shownFollows = null;

function showFollows(follows) {
  const key = JSON.stringify(follows.map((f) => [f.host, f.address]));
  if (key === shownFollows) return;
  shownFollows = key;
  $('follows').tBodies[0].replaceChildren(...follows.map((f) => {
    const row = element('tr');
    const address = element('td', 'address');
    address.append(element('span', 'mono', f.address));
    address.title = 'Its address until ' + new Date(f.until).toLocaleString() + '; then the next day\'s, which the node works out.';
    row.append(element('td', 'mono', f.host), address);
    return row;
  }));
  $('follows').hidden = follows.length === 0;
}

// ---- The exit cache ----
// What it holds is strangers' content: it is shown only as text (textContent) or as an image
// (a blob: URL in an <img>, where no script runs), never as markup of the page.

const cacheNoticeKey = 'quid-cache-notice-seen';
const maxTextPreview = 64 * 1024;
const maxImagePreview = 16 * 1024 * 1024;
const imageTypes = ['image/png', 'image/jpeg', 'image/gif', 'image/webp', 'image/avif', 'image/bmp', 'image/x-icon', 'image/vnd.microsoft.icon'];
let cacheQuery = '';
let cacheType = 'all';
let cacheReport = null;
let cacheTick = 0;
let cacheSearchTimer = null;
let selectedKey = null;
let previewUrl = null;
let previewing = 0;

const percent = (ratio) => Math.round(ratio * 100) + '%';
const shortKey = (key) => key.slice(0, 12);

/** The filter's kinds: html, images, text (any other text a terminal could show) and other. */
function cacheKind(type) {
  if (type === 'text/html' || type === 'application/xhtml+xml') return 'html';
  if (type.startsWith('image/')) return 'images';
  if (type.startsWith('text/') || /^application\/(json|javascript|x-javascript|ecmascript|xml)$/.test(type) || /\+(json|xml)$/.test(type)) return 'text';
  return 'other';
}

/** How a body is previewed: 'image' for the raster types a browser draws, 'text' for text (SVG and HTML as their source), null for none. */
function previewKind(type) {
  if (imageTypes.includes(type)) return 'image';
  if (type === 'image/svg+xml' || cacheKind(type) === 'text' || cacheKind(type) === 'html') return 'text';
  return null;
}

function cachePath(query) {
  return '/api/cache' + (query ? '?q=' + encodeURIComponent(query) : '');
}

/** Asks for the listing the search box names now; an answer for a search since changed is dropped. */
async function refreshCache() {
  const query = cacheQuery;
  const report = await api(cachePath(query));
  if (query === cacheQuery) showCache(report);
}

function showCache(report) {
  cacheReport = report;
  $('cache-off').hidden = report.enabled;
  $('cache-on').hidden = !report.enabled;
  if (!report.enabled) {
    $('cache-summary').textContent = 'off';
    return;
  }
  $('cache-summary').textContent = 'plaintext HTTP kept at this exit for the next asker; figures since the node started';
  $('cache-hit-ratio').textContent = percent(report.hitRatio);
  $('cache-hits').textContent = report.hits + ' of ' + report.requests + ' requests answered from store';
  $('cache-byte-hit-ratio').textContent = percent(report.byteHitRatio);
  $('cache-bytes-served').textContent = bytes(report.bytesSaved) + ' of ' + bytes(report.bytesServed) + ' sent from store';
  $('cache-saved').textContent = bytes(report.bytesSaved);
  $('cache-used').textContent = bytes(report.used) + ' of ' + bytes(report.quota);
  $('cache-usage-bar').style.width = Math.min(100, 100 * report.used / Math.max(1, report.quota)).toFixed(1) + '%';
  $('cache-entries').textContent = report.entries + (report.entries === 1 ? ' entry' : ' entries') + ' · ' + report.stored + ' stored since the start';
  showCacheEntries();
}

function showCacheEntries() {
  const report = cacheReport;
  if (!report || !report.enabled) return;
  const rows = report.items.filter((e) => cacheType === 'all' || cacheKind(e.type) === cacheType);
  $('cache-table').tBodies[0].replaceChildren(...rows.map((e) => {
    const row = element('tr', e.key === selectedKey ? 'selected' : '');
    row.dataset.key = e.key;
    row.tabIndex = 0;
    const key = element('td', 'mono key', shortKey(e.key));
    key.title = 'quid cache show ' + shortKey(e.key);
    const url = element('td', 'url');
    url.append(element('span', 'mono', e.url));
    url.title = e.url;
    const type = element('td');
    type.append(element('span', 'kind ' + cacheKind(e.type), e.type || 'none given'));
    row.append(key, url, type,
      element('td', 'num', bytes(e.size)),
      element('td', 'num', String(e.hits)),
      element('td', 'num' + (e.fresh ? '' : ' stale'), age(e.ageSeconds) + (e.fresh ? '' : ' · stale')));
    row.addEventListener('click', () => preview(e));
    row.addEventListener('keydown', (event) => { if (event.key === 'Enter') preview(e); });
    return row;
  }));
  const empty = $('cache-empty');
  empty.hidden = rows.length > 0;
  empty.textContent = report.entries === 0
    ? 'Nothing stored yet: a response is stored once a second circuit has fetched it through this node.'
    : 'No entry matches' + (cacheQuery ? ' “' + cacheQuery + '”' : '') + (cacheType === 'all' ? '' : ' among the ' + cacheType) + '.';
  $('cache-more').hidden = report.matching <= report.items.length;
  $('cache-more').textContent = 'The ' + report.items.length + ' most recently stored of ' + report.matching + ' entries: narrow the search to see others.';
}

function releasePreview() {
  if (previewUrl) URL.revokeObjectURL(previewUrl);
  previewUrl = null;
}

/** The body as text: its first maxTextPreview bytes, in the charset the origin named (UTF-8 if none or unknown). */
async function readText(response) {
  const reader = response.body.getReader();
  const chunks = [];
  let length = 0;
  while (length <= maxTextPreview) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
  }
  const cut = length > maxTextPreview;
  if (cut) reader.cancel();
  const all = new Uint8Array(Math.min(length, maxTextPreview));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, all.length - at);
    all.set(part, at);
    at += part.length;
  }
  const charset = /charset="?([^;"]+)/i.exec(response.headers.get('Content-Type') || '');
  let decoder;
  try {
    decoder = new TextDecoder(charset ? charset[1].trim() : 'utf-8');
  } catch {
    decoder = new TextDecoder('utf-8');
  }
  return { text: decoder.decode(all), cut };
}

async function preview(e) {
  selectedKey = e.key;
  for (const row of $('cache-table').tBodies[0].rows) row.classList.toggle('selected', row.dataset.key === e.key);
  const asked = ++previewing;
  releasePreview();
  const head = element('div', 'preview-head');
  head.append(element('div', 'url mono', e.url),
    element('div', 'muted', [e.type || 'no type given', bytes(e.size), e.hits + (e.hits === 1 ? ' hit' : ' hits'), 'stored ' + age(e.ageSeconds) + ' ago',
      e.fresh ? 'fresh' : 'stale'].join(' · ')));
  const body = element('div', 'preview-body muted', 'Loading…');
  const how = element('div', 'muted how');
  how.append('Written to a file by ', element('code', '', 'quid cache save ' + shortKey(e.key) + ' FILE'));
  $('cache-preview').replaceChildren(head, body, how);

  const kind = previewKind(e.type);
  if (!kind) {
    body.textContent = 'No preview for ' + (e.type || 'a body of no given type') + '.';
    return;
  }
  if (kind === 'image' && e.size > maxImagePreview) {
    body.textContent = 'Too large to preview (' + bytes(e.size) + ').';
    return;
  }
  try {
    const response = await fetch('/api/cache/' + encodeURIComponent(e.key) + '/body', { headers: { Authorization: 'Bearer ' + token }, cache: 'no-store' });
    if (response.status === 401) throw new Unauthorized();
    if (!response.ok) {
      const problem = await response.json().catch(() => null);
      throw new Error(problem && problem.error ? problem.error : 'the node answered ' + response.status);
    }
    if (kind === 'image') {
      // Typed by us, from the list of raster types: whatever the origin sent is only ever drawn as one.
      const blob = new Blob([await response.arrayBuffer()], { type: e.type });
      if (asked !== previewing) return;
      previewUrl = URL.createObjectURL(blob);
      const image = element('img');
      image.id = 'cache-preview-image';
      image.alt = 'The image stored for ' + e.url;
      image.src = previewUrl;
      body.className = 'preview-body';
      body.replaceChildren(image);
    } else {
      const { text, cut } = await readText(response);
      if (asked !== previewing) return;
      const pre = element('pre', '', text);
      pre.id = 'cache-preview-text';
      body.className = 'preview-body';
      body.replaceChildren(pre);
      if (cut) body.append(element('p', 'muted', 'The first ' + bytes(maxTextPreview) + ' of ' + bytes(e.size) + '.'));
    }
  } catch (error) {
    if (error instanceof Unauthorized) {
      signIn('The node did not accept this token: it has restarted since, or it is another node. Run quid dashboard for a new link.');
      return;
    }
    if (asked === previewing) body.textContent = 'No preview: ' + error.message;
  }
}

$('cache-search').addEventListener('input', () => {
  cacheQuery = $('cache-search').value.trim();
  clearTimeout(cacheSearchTimer);
  cacheSearchTimer = setTimeout(() => refreshCache().catch(() => {}), 150);
});

for (const button of document.querySelectorAll('#cache-types button')) {
  button.addEventListener('click', () => {
    cacheType = button.dataset.type;
    for (const other of document.querySelectorAll('#cache-types button')) {
      other.classList.toggle('active', other === button);
      other.setAttribute('aria-pressed', String(other === button));
    }
    showCacheEntries();
  });
}

$('cache-notice').hidden = localStorage.getItem(cacheNoticeKey) === 'seen';
$('cache-notice-ok').addEventListener('click', () => {
  localStorage.setItem(cacheNoticeKey, 'seen');
  $('cache-notice').hidden = true;
});

// ---- Credits ----

const mibDays = (n) => n.toLocaleString('en') + ' MiB·days';
const mib = (n) => n >= 1024 ? (n / 1024).toFixed(n % 1024 ? 1 : 0) + ' GiB' : n + ' MiB';

function showCredits(report) {
  const held = report.balances.reduce((sum, b) => sum + b.miBDays, 0);
  $('credits-summary').textContent = 'issued for disk, spent only at their issuer; epoch ' + report.epoch + ' ends ' + new Date(report.epochEnds).toLocaleString();
  $('credits-held').textContent = mibDays(held);
  $('credits-issuers').textContent = report.balances.length + (report.balances.length === 1 ? ' issuer' : ' issuers');
  $('credits-disk').textContent = report.offerDiskMiB > 0 ? mib(report.offerDiskMiB) : 'none';
  const granted = report.offerDiskMiB - report.freeDiskMiB;
  $('credits-disk-bar').style.width = (report.offerDiskMiB > 0 ? 100 * granted / report.offerDiskMiB : 0).toFixed(1) + '%';
  $('credits-disk-granted').textContent = report.offerDiskMiB > 0 ? mib(granted) + ' granted to partners' : '--offer-disk 1GiB offers some';
  $('credits-issued').textContent = report.issuedMiBDays.toLocaleString('en');
  $('credits-exchanged').textContent = report.exchangedMiBDays.toLocaleString('en');
  $('credits-spent').textContent = report.spentCredits + ' in the spent set';
  const body = $('credits-table').querySelector('tbody');
  body.replaceChildren(...report.balances.map((b) => {
    const row = document.createElement('tr');
    for (const [text, numeric] of [[b.issuer.slice(0, 8), false], [b.miBDays.toLocaleString('en'), true], [String(b.credits), true], [new Date(b.soonestExpiry).toLocaleString(), false]]) {
      const cell = document.createElement('td');
      cell.textContent = text;
      if (numeric) cell.className = 'num';
      row.append(cell);
    }
    row.firstChild.title = b.issuer;
    return row;
  }));
  $('credits-table').hidden = report.balances.length === 0;
  $('credits-empty').hidden = report.balances.length > 0;
}

/** Our files on other nodes, and what we hold for others (opaque to us: sizes and dates). */
function showStorage(stored, hosted) {
  const copies = stored.reduce((n, f) => n + f.copies.filter((c) => c.state === 'Held' || c.state === 'Expiring').length, 0);
  const wanted = stored.reduce((n, f) => n + f.copiesWanted, 0);
  const troubled = stored.reduce((n, f) => n + f.copies.filter((c) => c.state === 'Unreachable' || c.state === 'Lost' || c.state === 'Expiring').length, 0);
  $('stored-files').textContent = stored.length + (stored.length === 1 ? ' file' : ' files');
  $('stored-copies').textContent = stored.length === 0 ? "'quid store put FILE' stores one"
    : copies + ' of ' + wanted + ' copies held' + (troubled ? ' · ' + troubled + (troubled === 1 ? ' needs' : ' need') + ' attention (quid store ls)' : '');
  $('hosted-used').textContent = hosted.quota > 0 ? bytes(hosted.used) + ' of ' + bytes(hosted.quota) : 'none';
  $('hosted-bar').style.width = (hosted.quota > 0 ? Math.min(100, 100 * hosted.used / hosted.quota) : 0).toFixed(1) + '%';
  $('hosted-objects').textContent = hosted.quota > 0 ? hosted.objects.length + (hosted.objects.length === 1 ? ' object' : ' objects') + ', sealed by their owners' : '--offer-disk 1GiB offers some';
}

// ---- Programs ----

const gfuel = (fuel) => (fuel / 2 ** 30).toLocaleString('en', { maximumFractionDigits: fuel < 2 ** 30 ? 3 : 1 }) + ' Gfuel';

/** Programs run here for others (never whose), and ours on other nodes, each with a fuel gauge. */
function showPrograms(credits, hosted, ours) {
  const offered = credits.offerCpuGfuel || 0;
  $('cpu-offered').textContent = offered > 0 ? offered.toLocaleString('en') + ' Gfuel/day' : 'none';
  $('cpu-bar').style.width = (offered > 0 ? 100 * (offered - credits.freeCpuGfuel) / offered : 0).toFixed(1) + '%';
  $('cpu-granted').textContent = offered > 0 ? (offered - credits.freeCpuGfuel).toLocaleString('en') + ' Gfuel/day granted to partners' : '--offer-cpu 1Tfuel offers some';
  const here = hosted.programs || [];
  $('programs-here').textContent = here.length + (here.length === 1 ? ' program' : ' programs');
  const paused = here.filter((p) => p.state === 'Paused').length;
  $('programs-here-note').textContent = offered === 0 ? 'this node runs none' : paused ? paused + ' paused, out of fuel' : 'paid in this node\'s credits';
  const low = ours.filter((p) => p.low || p.state === 'Paused').length;
  $('programs-ours').textContent = ours.length + (ours.length === 1 ? ' program' : ' programs');
  $('programs-ours-note').textContent = ours.length === 0 ? "'quid host deploy' runs one" : low ? low + ' low on fuel: quid host topup' : 'all have fuel';
  const body = $('programs-table').querySelector('tbody');
  body.replaceChildren(...here.map((p) => {
    const row = document.createElement('tr');
    const gauge = element('span', 'fuel' + (p.low || p.state === 'Paused' ? ' low' : ''));
    const fill = document.createElement('div');
    fill.style.width = Math.max(0, Math.min(100, 100 * Math.log2(Math.max(1, p.fuel / 2 ** 20)) / 20)).toFixed(1) + '%';
    gauge.append(fill);
    const fuel = document.createElement('td');
    fuel.append(gauge, document.createTextNode(gfuel(p.fuel)));
    const cells = [p.id.slice(0, 12), p.state.toLowerCase() + (p.low ? ', low' : ''), null, bytes(p.memoryBytes), bytes(p.storedBytes), p.deleteAt ? new Date(p.deleteAt).toLocaleString() : '–'];
    cells.forEach((text, i) => {
      if (text === null) {
        row.append(fuel);
        return;
      }
      const cell = document.createElement('td');
      cell.textContent = text;
      if (i === 3 || i === 4) cell.className = 'num';
      row.append(cell);
    });
    row.firstChild.title = p.address;
    return row;
  }));
  $('programs-table').hidden = here.length === 0;
}

// ---- The loop ----

async function refresh() {
  try {
    // The cache's listing may be long: asked for every fifth second, and at once when the search changes.
    const query = cacheQuery;
    const [status, history, ledger, circuits, services, follows, credits, stored, hosted, programs, cache] = await Promise.all([api('/api/status'), api('/api/throughput'),
      api('/api/ledger'), api('/api/circuits'), api('/api/services'), api('/api/follows'), api('/api/credits'), api('/api/store'), api('/api/hosted'),
      api('/api/programs'), cacheTick++ % 5 === 0 ? api(cachePath(query)) : null]);
    $('signin').hidden = true;
    $('main').hidden = false;
    showStatus(status);
    showChart(history);
    showPartners(ledger);
    showCircuits(circuits);
    showServices(services);
    showFollows(follows);
    showCredits(credits);
    showStorage(stored, hosted);
    showPrograms(credits, hosted, programs);
    if (cache && query === cacheQuery) showCache(cache);
  } catch (e) {
    if (e instanceof Unauthorized) {
      signIn('The node did not accept this token: it has restarted since, or it is another node. Run quid dashboard for a new link.');
      return;
    }
    $('phase-text').textContent = 'The node does not answer: is it still running?';
    $('phase').classList.remove('ready');
  }
  timer = setTimeout(refresh, 1000);
}

function signIn(reason) {
  clearTimeout(timer);
  sessionStorage.removeItem(tokenKey);
  token = null;
  $('main').hidden = true;
  $('signin').hidden = false;
  $('signin-reason').textContent = reason || '';
  $('phase-text').textContent = 'Not signed in';
}

$('signin-form').addEventListener('submit', (event) => {
  event.preventDefault();
  token = $('signin-token').value.trim().toLowerCase();
  sessionStorage.setItem(tokenKey, token);
  refresh();
});

token = takeTokenFromLink();
if (token) refresh();
else signIn();
