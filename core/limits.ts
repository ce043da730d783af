/**
 * Size limits that hold in every runtime, so that a job that runs locally also runs on AWS.
 * Both follow from DynamoDB's 400 KB item: a lease (board entry) carries its task's input, and a
 * run record carries the input and the result together.
 */

/**
 * Largest task input, as JSON, in bytes (200 KiB). Checked at plan time, for plans and triggers
 * alike, by the local runner and the AWS scheduler; put large data in the object store and pass
 * its key.
 */
export const MAX_INPUT_BYTES = 200 * 1024;

/**
 * Largest task result, as JSON, in bytes (128 KiB): the default cap of the local runner, the
 * worker Lambda and the conductor. A larger result fails its run with `ResultTooLargeError`;
 * write large outputs to the object store and return their key.
 */
export const MAX_RESULT_BYTES = 128 * 1024;
