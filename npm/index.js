// @plugboard/sdk: the public ES module over the WebAssembly client.
//
// Plugboard.create() loads the WebAssembly once, then every call goes to the
// client compiled from Rust (sdk-wasm/). Nothing here talks to the network
// itself; it checks arguments and keeps the public names stable.

import init, { Client } from './dist/plugboard_sdk.js';

let loading = null;

function load() {
  if (!loading) {
    loading = init({ module_or_path: new URL('./dist/plugboard_sdk_bg.wasm', import.meta.url) }).catch((cause) => {
      loading = null;
      throw plugboardError('network_error', 'could not load the Plugboard SDK', cause);
    });
  }
  return loading;
}

function plugboardError(code, message, cause) {
  const error = new Error(message, cause === undefined ? undefined : { cause });
  error.name = 'PlugboardError';
  error.code = code;
  return error;
}

function requireString(value, name) {
  if (typeof value !== 'string' || value.length === 0) {
    throw plugboardError('validation_failed', `${name} must be a non-empty string`);
  }
  return value;
}

function optionalString(value, name) {
  if (value === undefined || value === null) return undefined;
  return requireString(value, name);
}

function options(value, name) {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) {
    throw plugboardError('validation_failed', `${name} must be an object`);
  }
  return value;
}

/** Plugboard's browser SDK for one end user's connect session. */
export class Plugboard {
  #client;

  constructor(client) {
    if (!(client instanceof Client)) {
      throw plugboardError('validation_failed', 'use Plugboard.create({ serverUrl, sessionToken })');
    }
    this.#client = client;
  }

  static async create(config) {
    const { serverUrl, sessionToken, fetchSessionToken } = options(config, 'the configuration');
    requireString(serverUrl, 'serverUrl');
    requireString(sessionToken, 'sessionToken');
    if (fetchSessionToken !== undefined && typeof fetchSessionToken !== 'function') {
      throw plugboardError('validation_failed', 'fetchSessionToken must be a function returning a promise of a session token');
    }
    await load();
    return new Plugboard(new Client(serverUrl, sessionToken, fetchSessionToken));
  }

  connectApp(appKey, opts) {
    try {
      requireString(appKey, 'appKey');
      const { connectedAccountId, params } = options(opts, 'the options');
      optionalString(connectedAccountId, 'connectedAccountId');
      const checked = options(params, 'params');
      for (const [key, value] of Object.entries(checked)) {
        if (typeof value !== 'string') throw plugboardError('validation_failed', `params.${key} must be a string`);
      }
      // Synchronous up to window.open, so that the popup opens inside the caller's click.
      return this.#client.connectApp(appKey, connectedAccountId, checked);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  getConnectedAccounts(appKey) {
    try {
      return this.#client.getConnectedAccounts(optionalString(appKey, 'appKey'));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  disconnectApp(appKey, opts) {
    try {
      requireString(appKey, 'appKey');
      const { connectedAccountId } = options(opts, 'the options');
      return this.#client.disconnectApp(appKey, optionalString(connectedAccountId, 'connectedAccountId'));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  listApps() {
    return this.#client.listApps();
  }
}
