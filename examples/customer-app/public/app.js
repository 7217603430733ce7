// The customer app's page: the apps Plugboard offers, a Connect button each,
// the user's connected accounts with their labels, "Who is this?" (a function
// run on the account through Plugboard), and Disconnect.

import { Plugboard } from '/sdk/index.js';

const status = document.getElementById('status');
const list = document.getElementById('apps');

async function sessionToken() {
  const response = await fetch('/api/plugboard-session', { method: 'POST' });
  if (!response.ok) throw new Error('could not get a Plugboard session');
  return response.json();
}

const first = await sessionToken();
const pb = await Plugboard.create({
  serverUrl: first.serverUrl,
  sessionToken: first.token,
  fetchSessionToken: async () => (await sessionToken()).token,
});

function say(text) {
  status.textContent = text;
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children) node.append(child);
  return node;
}

async function render() {
  const [apps, accounts] = await Promise.all([pb.listApps(), pb.getConnectedAccounts()]);
  list.replaceChildren();
  for (const app of apps) {
    const connect = element('button', { type: 'button', 'data-app': app.key }, `Connect ${app.label}`);
    connect.addEventListener('click', async () => {
      say(`Connecting ${app.label}…`);
      try {
        const account = await pb.connectApp(app.key); // opens the popup, inside this click
        say(`Connected ${account.label ?? account.id}.`);
      } catch (error) {
        say(`Not connected: ${error.code}.`);
      }
      await render();
    });
    const mine = accounts.filter((a) => a.app === app.key);
    const rows = element('ul', { class: 'accounts' });
    for (const account of mine) {
      const disconnect = element('button', { type: 'button' }, 'Disconnect');
      disconnect.addEventListener('click', async () => {
        await pb.disconnectApp(app.key, { connectedAccountId: account.id });
        say(`Disconnected ${account.label ?? account.id}.`);
        await render();
      });
      const output = element('pre', { class: 'output' });
      const ask = element('button', { type: 'button', 'data-function': 'whoami' }, 'Who is this?');
      ask.addEventListener('click', async () => {
        try {
          // The provider's answer, fetched by Plugboard with the account's token.
          const { output: answer } = await pb.invokeFunction('whoami', {}, { connectedAccountId: account.id });
          output.textContent = JSON.stringify(answer, null, 2);
        } catch (error) {
          output.textContent = `Failed: ${error.code}`;
        }
      });
      rows.append(element('li', { class: 'account' }, element('span', { class: 'label' }, account.label ?? account.id), ' ', ask, ' ', disconnect, output));
    }
    const about = app.description ? element('p', { class: 'description' }, app.description) : '';
    list.append(element('li', { class: 'app' }, element('strong', {}, app.label), ' ', connect, about, rows));
  }
  if (apps.length === 0) list.append(element('li', {}, 'No apps are configured in Plugboard yet.'));
}

await render();
