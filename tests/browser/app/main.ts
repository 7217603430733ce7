// A customer's page written in TypeScript (strict, exactOptionalPropertyTypes)
// against the installed @plugboard/sdk, built by Vite and by webpack.

import { Plugboard, PlugboardError, isPlugboardError } from '@plugboard/sdk';
import type { ConnectedAccount, ConnectOptions } from '@plugboard/sdk';

interface Outcome {
  value?: ConnectedAccount;
  error?: string;
}

declare global {
  interface Window {
    ready?: boolean;
    loadError?: string;
    outcome: Outcome | null;
    events: string[];
  }
}

async function main(): Promise<void> {
  window.outcome = null;
  window.events = [];
  const params = new URLSearchParams(location.hash.slice(1));
  let pb: Plugboard;
  try {
    pb = await Plugboard.create({
      serverUrl: params.get('server') ?? '',
      sessionToken: params.get('token') ?? '',
    });
  } catch (error: unknown) {
    window.loadError = error instanceof PlugboardError ? error.code : String(error);
    return;
  }
  pb.addEventListener('connected', (event) => {
    window.events.push(`connected:${event.detail.id}`);
  });
  pb.addEventListener('error', (event) => {
    window.events.push(`error:${event.detail.code}`);
  });
  const button = document.querySelector<HTMLButtonElement>('#connect');
  button?.addEventListener('click', () => {
    const options: ConnectOptions = { params: { region: 'eu' } };
    pb.connectApp('acme', options).then(
      (account) => {
        window.outcome = { value: account };
      },
      (error: unknown) => {
        window.outcome = { error: isPlugboardError(error) ? error.code : 'not a PlugboardError' };
      },
    );
  });
  window.ready = true;
}

void main();
