// Types of @plugboard/sdk.

/** Every code a Plugboard failure can carry, over HTTP and in the SDK alike. */
export type ErrorCode =
  | 'unauthorized'
  | 'session_expired'
  | 'forbidden'
  | 'origin_not_allowed'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'account_ambiguous'
  | 'account_limit'
  | 'account_mismatch'
  | 'needs_reauth'
  | 'validation_failed'
  | 'rate_limited'
  | 'provider_error'
  | 'upstream_error'
  | 'internal'
  | 'unavailable'
  | 'access_denied'
  | 'popup_blocked'
  | 'user_cancelled'
  | 'connect_in_progress'
  | 'network_error'
  | 'aborted'
  | 'unsupported_environment'
  | 'session_token_failed';

/** What every promise of the SDK rejects with. */
export declare class PlugboardError extends Error {
  constructor(
    code: ErrorCode,
    message: string,
    options?: {
      cause?: unknown;
      providerCode?: string;
      fields?: Readonly<Record<string, string>>;
      upstreamStatus?: number;
      upstreamBody?: string;
    },
  );
  readonly name: 'PlugboardError';
  readonly code: ErrorCode;
  /** The provider's own error code, such as `invalid_scope`. */
  readonly providerCode?: string;
  /** For `validation_failed`: what is wrong with each field (`input.email`, …). */
  readonly fields?: Readonly<Record<string, string>>;
  /** For `upstream_error` with an answer: the provider API's HTTP status. */
  readonly upstreamStatus?: number;
  /** For `upstream_error` with an answer: the start of its body, credentials removed. */
  readonly upstreamBody?: string;
}

/** True for a `PlugboardError` (also one from another copy of this package). */
export declare function isPlugboardError(value: unknown): value is PlugboardError;

/** The kinds of credentials an app uses. */
export type AuthType =
  | 'oauth2_authorization_code'
  | 'oauth2_client_credentials'
  | 'oauth2_refresh_token'
  | 'api_key'
  | 'api_key_secret'
  | 'api_key_url'
  | 'basic'
  | 'basic_url'
  | 'basic_api_key'
  | 'aws_sigv4';

/** An app (a configured provider) the end user can connect. */
export interface App {
  readonly key: string;
  readonly label: string;
  readonly description: string | null;
  readonly logoUrl: string | null;
  readonly authType: AuthType;
  readonly multipleAccounts: boolean;
}

/** One of the end user's accounts at a provider. */
export interface ConnectedAccount {
  readonly id: string;
  /** The app's key. */
  readonly app: string;
  /** A human label from the provider, such as an e-mail address. */
  readonly label: string | null;
  readonly status: 'active' | 'needs_reauth';
  /** The scopes the provider actually granted. */
  readonly scopes: readonly string[];
  /** RFC 3339. */
  readonly createdAt: string;
}

export interface PlugboardConfig {
  /** Where Plugboard is served, e.g. `https://plugboard.example.com`. */
  serverUrl: string;
  /** A connect session token your backend minted for the signed-in user. */
  sessionToken: string;
  /** Called for a new session token when the current one has expired. */
  fetchSessionToken?: () => Promise<string>;
}

export interface ConnectOptions {
  /** Reconnect this account in place (the end user must sign in to the same provider account). */
  connectedAccountId?: string;
  /** Per-connection variables, such as a data centre or a shop name. */
  params?: Readonly<Record<string, string>>;
  /** Aborting closes the popup, cancels the attempt and rejects with `aborted` (unless it already succeeded). */
  signal?: AbortSignal;
}

/** The events a `Plugboard` instance dispatches, with their `detail`. */
export interface PlugboardEventMap {
  connected: CustomEvent<ConnectedAccount>;
  disconnected: CustomEvent<ConnectedAccount>;
  /** Every rejection of `connectApp` and `disconnectApp`, `user_cancelled` and `aborted` included. */
  error: CustomEvent<PlugboardError>;
}

export interface InvokeOptions {
  /** Which account, when the end user has several on the function's app. */
  connectedAccountId?: string;
  /** A `nextPage` from an earlier answer, for the page after it. */
  page?: string;
}

/** What a function answers. */
export interface InvokeResult<Output = unknown> {
  /** The provider's answer, mapped by the function's `output`. */
  readonly output: Output;
  /** Pass as `page` for the next page; `null` on the last one. */
  readonly nextPage: string | null;
}

export interface DisconnectOptions {
  /** Which account, when several are connected to the app. */
  connectedAccountId?: string;
}

export declare class Plugboard extends EventTarget {
  private constructor();
  addEventListener<K extends keyof PlugboardEventMap>(
    type: K,
    listener: (this: Plugboard, event: PlugboardEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  removeEventListener<K extends keyof PlugboardEventMap>(
    type: K,
    listener: (this: Plugboard, event: PlugboardEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
  /** Loads the SDK and returns a client for one connect session. */
  static create(config: PlugboardConfig): Promise<Plugboard>;
  /** Opens the provider's consent screen (or Plugboard's credential form) in a popup; call it from a click handler. */
  connectApp(appKey: string, options?: ConnectOptions): Promise<ConnectedAccount>;
  /** The end user's connected accounts, of one app or of all. */
  getConnectedAccounts(appKey?: string): Promise<ConnectedAccount[]>;
  /** Disconnects an account: revoked at the provider where it can be, then deleted. */
  disconnectApp(appKey: string, options?: DisconnectOptions): Promise<void>;
  /** The apps this session may connect. */
  listApps(): Promise<App[]>;
  /**
   * Runs a function your project declared, on one of the end user's accounts:
   * the one named, else their only one on the function's app (`not_found`
   * for none, `account_ambiguous` for several). A bad input is
   * `validation_failed` with `fields`; a failed call `upstream_error` with
   * `upstreamStatus` and `upstreamBody`.
   */
  invokeFunction<Output = unknown>(
    name: string,
    input?: Readonly<Record<string, unknown>>,
    options?: InvokeOptions,
  ): Promise<InvokeResult<Output>>;
}
