/** Lambda's Invoke, played in-process for the function a test deploys: what the SDK mock answers. */

/** An Invoke's request and answer, as far as the tests read them. */
export interface InvokeInput {
  FunctionName?: string;
  Payload?: Uint8Array | string;
}

export interface InvokeAnswer {
  StatusCode: number;
  FunctionError?: string;
  Payload: Uint8Array;
}

/**
 * Runs `handler` on the invocation's payload, when it names `functionName`, and answers as Lambda
 * does: the result as payload, or `FunctionError: 'Unhandled'` with `errorType`/`errorMessage`.
 * Any other name fails as Lambda's ResourceNotFoundException. `onEvent` sees each payload first.
 */
export async function answerInvoke(functionName: string, handler: (event: unknown) => Promise<unknown>, input: InvokeInput, onEvent?: (event: unknown) => void): Promise<InvokeAnswer> {
  if (input.FunctionName !== functionName) throw Object.assign(new Error(`Function not found: ${input.FunctionName}`), { name: 'ResourceNotFoundException' });
  const event = payloadOf(input.Payload);
  onEvent?.(event);
  try {
    const result = await handler(event);
    return { StatusCode: 200, Payload: new TextEncoder().encode(JSON.stringify(result)) };
  } catch (error) {
    const payload = { errorType: (error as Error).name, errorMessage: (error as Error).message, trace: [] };
    return { StatusCode: 200, FunctionError: 'Unhandled', Payload: new TextEncoder().encode(JSON.stringify(payload)) };
  }
}

/** An Invoke payload as JSON (the SDK takes it as text or bytes). */
export function payloadOf(payload: unknown): unknown {
  if (typeof payload === 'string') return JSON.parse(payload) as unknown;
  if (payload instanceof Uint8Array) return JSON.parse(new TextDecoder().decode(payload)) as unknown;
  throw new Error(`the caller sent a payload that is neither text nor bytes: ${String(payload)}`);
}
