// The console's only script: conveniences on top of pages that work without it.
// - Exports (form[data-stream]): the download is fetched here so that its size can be
//   shown as it arrives, then handed to the browser as a file.
// - Exports' device search (input[data-search]): asks the server for the matching
//   devices as one types and lists them as check boxes; the ones already checked stay
//   at the top. Without the script, its own form lists them on the exports page.
// - Selects marked data-autosubmit submit their form on change.
'use strict';

function formatBytes(n, lang) {
  const units = lang === 'fr' ? ['o', 'ko', 'Mo', 'Go'] : ['B', 'kB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toLocaleString(lang, { maximumFractionDigits: i ? 1 : 0 })} ${units[i]}`;
}

async function streamDownload(form, event) {
  event.preventDefault();
  const lang = document.documentElement.lang || 'fr';
  const status = document.getElementById(form.dataset.stream);
  const button = form.querySelector('button[type="submit"]');
  const url = `${form.action}?${new URLSearchParams(new FormData(form)).toString()}`;
  button.disabled = true;
  status.textContent = lang === 'fr' ? 'Préparation de l’export…' : 'Preparing the export…';
  try {
    const response = await fetch(url, { credentials: 'same-origin' });
    if (!response.ok) {
      status.textContent = (lang === 'fr' ? 'Échec : ' : 'Failed: ') + response.status;
      return;
    }
    const reader = response.body.getReader();
    const parts = [];
    let received = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      received += value.length;
      status.textContent = (lang === 'fr' ? 'Reçu : ' : 'Received: ') + formatBytes(received, lang);
    }
    const disposition = response.headers.get('content-disposition') || '';
    const name = (/filename="([^"]+)"/.exec(disposition) || [null, 'export'])[1];
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob(parts, { type: response.headers.get('content-type') || '' }));
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    status.textContent = (lang === 'fr' ? 'Terminé : ' : 'Done: ') + `${name}, ${formatBytes(received, lang)}`;
  } catch (error) {
    status.textContent = (lang === 'fr' ? 'Échec : ' : 'Failed: ') + error;
  } finally {
    button.disabled = false;
  }
}

function deviceSearch(input) {
  const results = document.getElementById(input.getAttribute('aria-controls'));
  const found = document.getElementById(input.getAttribute('aria-describedby'));
  let timer = null;
  let asked = 0;
  async function search() {
    const ticket = ++asked;
    const url = `${input.dataset.search}?${new URLSearchParams({ q: input.value.trim() })}`;
    let answer;
    try {
      const response = await fetch(url, { credentials: 'same-origin' });
      if (!response.ok) throw new Error(String(response.status));
      answer = await response.json();
    } catch (error) {
      const lang = document.documentElement.lang || 'fr';
      found.textContent = (lang === 'fr' ? 'Échec de la recherche : ' : 'Search failed: ') + error.message;
      return;
    }
    if (ticket !== asked) return; // a newer search was sent meanwhile
    const chosen = new Set();
    for (const item of [...results.children]) {
      const box = item.querySelector('input[type="checkbox"]');
      if (box && box.checked) chosen.add(box.value);
      else item.remove();
    }
    for (const device of answer.devices) {
      if (chosen.has(device.dev_eui)) continue;
      const item = document.createElement('li');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.id = `dev-${device.dev_eui}`;
      box.name = 'devices';
      box.value = device.dev_eui;
      const label = document.createElement('label');
      label.htmlFor = box.id;
      label.className = 'inline';
      label.textContent = `${device.name} (${device.dev_eui})`;
      item.append(box, ' ', label);
      results.append(item);
    }
    found.textContent = answer.message;
  }
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(search, 250);
  });
  input.form.addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(timer);
    search();
  });
}

document.addEventListener('DOMContentLoaded', () => {
  for (const input of document.querySelectorAll('input[data-search]')) deviceSearch(input);
  for (const form of document.querySelectorAll('form[data-stream]')) {
    form.addEventListener('submit', (event) => streamDownload(form, event));
  }
  for (const select of document.querySelectorAll('select[data-autosubmit]')) {
    select.addEventListener('change', () => select.form.requestSubmit());
  }
});
