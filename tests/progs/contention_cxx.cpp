// Known contention through C++'s std::mutex, std::shared_mutex and
// std::condition_variable, which libstdc++ builds on the pthread calls
// (tests/e2e/contention.sh):
// - cxx_hold holds a std::mutex 40 ms while cxx_wait waits for it, 10 times;
// - cxx_hold_shared holds a std::shared_mutex exclusively 40 ms while
//   cxx_wait_shared waits for it shared, 10 times;
// - cxx_wait_cv waits 30 ms on a std::condition_variable, 10 times.
// Each prints what it measured itself ("cxx_wait waits 10 wait_ns N": the
// waits that did wait, more than 10 us, and the time of all).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <shared_mutex>
#include <thread>

#define NOINLINE __attribute__((noinline, noclone))

using clock_type = std::chrono::steady_clock;

static long long since(clock_type::time_point t0)
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count();
}

// The waits that did wait (more than 10 us), per case.
static int waited;
// What the holders made their waiters wait: from a waiter's start to the
// holder's release (just before its unlock), for a wait that did wait.
static long long caused;

static bool add_wait(long long ns, long long *total)
{
    *total += ns;
    if (ns <= 10000)
        return false;
    waited++;
    return true;
}

static long long stamp()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               clock_type::now().time_since_epoch())
        .count();
}

static void add_caused(bool did_wait, clock_type::time_point t0, const std::atomic<long long> &r)
{
    long long start =
        std::chrono::duration_cast<std::chrono::nanoseconds>(t0.time_since_epoch()).count();
    if (did_wait && r.load() > start)
        caused += r.load() - start;
}

static void await(const std::atomic<int> &flag, int value)
{
    while (flag.load() != value)
        std::this_thread::yield();
}

static std::mutex mu;
static std::atomic<int> mu_round{0}, mu_done{0};
static std::atomic<long long> mu_released{0};

extern "C" NOINLINE void cxx_hold(int rounds)
{
    for (int i = 1; i <= rounds; i++) {
        await(mu_done, i - 1);
        mu.lock();
        mu_round = i;
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
        mu_released = stamp();
        mu.unlock();
    }
}

extern "C" NOINLINE long long cxx_wait(int rounds)
{
    long long ns = 0;
    for (int i = 1; i <= rounds; i++) {
        await(mu_round, i);
        auto t0 = clock_type::now();
        mu.lock();
        add_caused(add_wait(since(t0), &ns), t0, mu_released);
        mu.unlock();
        mu_done = i;
    }
    return ns;
}

static std::shared_mutex smu;
static std::atomic<int> smu_round{0}, smu_done{0};
static std::atomic<long long> smu_released{0};

extern "C" NOINLINE void cxx_hold_shared(int rounds)
{
    for (int i = 1; i <= rounds; i++) {
        await(smu_done, i - 1);
        smu.lock();
        smu_round = i;
        std::this_thread::sleep_for(std::chrono::milliseconds(40));
        smu_released = stamp();
        smu.unlock();
    }
}

extern "C" NOINLINE long long cxx_wait_shared(int rounds)
{
    long long ns = 0;
    for (int i = 1; i <= rounds; i++) {
        await(smu_round, i);
        auto t0 = clock_type::now();
        smu.lock_shared();
        add_caused(add_wait(since(t0), &ns), t0, smu_released);
        smu.unlock_shared();
        smu_done = i;
    }
    return ns;
}

static std::mutex cv_mu;
static std::condition_variable cv;
static int cv_posted;
static std::atomic<int> cv_waiting{0};

extern "C" NOINLINE long long cxx_wait_cv(int rounds)
{
    long long ns = 0;
    for (int i = 1; i <= rounds; i++) {
        std::unique_lock<std::mutex> g(cv_mu);
        cv_waiting = i;
        auto t0 = clock_type::now();
        cv.wait(g, [i] { return cv_posted >= i; });
        add_wait(since(t0), &ns);
    }
    return ns;
}

int main()
{
    const int rounds = 10;
    long long wait_ns = 0;
    waited = 0;
    std::thread t([&] { wait_ns = cxx_wait(rounds); });
    cxx_hold(rounds);
    t.join();
    std::printf("cxx_wait waits %d wait_ns %lld\n", waited, wait_ns);
    std::printf("cxx_hold caused_ns %lld\n", caused);
    waited = 0;
    caused = 0;

    std::thread s([&] { wait_ns = cxx_wait_shared(rounds); });
    cxx_hold_shared(rounds);
    s.join();
    std::printf("cxx_wait_shared waits %d wait_ns %lld\n", waited, wait_ns);
    std::printf("cxx_hold_shared caused_ns %lld\n", caused);
    waited = 0;

    std::thread c([&] { wait_ns = cxx_wait_cv(rounds); });
    for (int i = 1; i <= rounds; i++) {
        await(cv_waiting, i);
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        {
            std::lock_guard<std::mutex> g(cv_mu);
            cv_posted = i;
        }
        cv.notify_one();
    }
    c.join();
    std::printf("cxx_wait_cv waits %d wait_ns %lld\n", waited, wait_ns);
    return 0;
}
