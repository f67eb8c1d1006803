// Berth UI: copy buttons, live search and filters, delete confirmation, theme switch.
// Everything works without this file; it only saves round trips and clicks.
(() => {
  const status = document.getElementById('status');
  const say = (text) => { if (status) status.textContent = text; };

  document.addEventListener('click', async (event) => {
    const copy = event.target.closest('button[data-copy]');
    if (copy) {
      try {
        await navigator.clipboard.writeText(copy.dataset.copy);
        say('Copied to the clipboard');
      } catch {
        window.prompt('Copy this:', copy.dataset.copy);
      }
      copy.classList.add('done');
      setTimeout(() => copy.classList.remove('done'), 1500);
      return;
    }
    const theme = event.target.closest('#theme');
    if (theme) {
      const root = document.documentElement;
      const dark = root.dataset.theme ? root.dataset.theme === 'dark' : matchMedia('(prefers-color-scheme: dark)').matches;
      const next = dark ? 'light' : 'dark';
      root.dataset.theme = next;
      document.cookie = `berth_theme=${next}; Path=/; Max-Age=31536000; SameSite=Lax`;
      theme.setAttribute('aria-pressed', String(next === 'dark'));
      say(`${next === 'dark' ? 'Dark' : 'Light'} theme`);
    }
  });

  // Forms marked data-live refresh their results region as the user types.
  for (const form of document.querySelectorAll('form[data-live]')) {
    const target = document.getElementById(form.dataset.live);
    let timer;
    let controller;
    const refresh = async () => {
      const params = new URLSearchParams(new FormData(form));
      for (const [key, value] of [...params]) if (value === '') params.delete(key);
      const url = `${form.action}${params.size ? `?${params}` : ''}`;
      controller?.abort();
      controller = new AbortController();
      try {
        const response = await fetch(`${url}${params.size ? '&' : '?'}partial=1`, { signal: controller.signal, headers: { accept: 'text/html' } });
        if (!response.ok) return;
        target.innerHTML = await response.text();
        history.replaceState(null, '', url);
        const count = target.querySelector('[data-count]');
        if (count) say(count.dataset.count);
      } catch (error) {
        if (error.name !== 'AbortError') say('Could not refresh the results');
      }
    };
    form.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(refresh, 150); });
    form.addEventListener('change', (event) => { if (event.target.tagName === 'SELECT') { clearTimeout(timer); refresh(); } });
  }

  // Delete buttons ask in a dialog; without script they lead to a confirmation page.
  const dialog = document.getElementById('confirm');
  document.addEventListener('click', (event) => {
    const link = event.target.closest('a[data-confirm]');
    if (!link || !dialog || typeof dialog.showModal !== 'function') return;
    event.preventDefault();
    dialog.querySelector('[data-message]').textContent = link.dataset.confirm;
    dialog.querySelector('form').action = link.dataset.action;
    dialog.showModal();
    dialog.querySelector('button[value="cancel"]').focus();
  });
  dialog?.querySelector('button[value="cancel"]')?.addEventListener('click', (event) => {
    event.preventDefault();
    dialog.close();
  });
  // Tab and Shift+Tab wrap around inside the open dialog instead of leaving the page.
  dialog?.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab') return;
    const controls = [...dialog.querySelectorAll('button, a[href], input:not([type="hidden"])')];
    const edge = event.shiftKey ? controls[0] : controls[controls.length - 1];
    if (document.activeElement !== edge) return;
    event.preventDefault();
    (event.shiftKey ? controls[controls.length - 1] : controls[0]).focus();
  });
})();
