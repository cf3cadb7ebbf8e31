// SPDX-License-Identifier: UNLICENSED
pragma solidity ^0.8.24;

/// @notice The part of EnterpriseRegistry that AnchorRegistry relies on.
interface IEnterpriseRegistry {
    function isActiveAnchorer(address account) external view returns (bool);
    function enterpriseOfAnchorer(address account) external view returns (address);
}

/// @title AnchorRegistry
/// @notice Records Merkle roots of batches of industrial records, bound to the enterprise that
/// anchored them. Only accounts the EnterpriseRegistry reports as active anchorers may anchor.
/// Anchors are keyed by (anchoring enterprise, root): each enterprise anchors a root once, and an
/// anchor by another enterprise (e.g. one that copied a root from the mempool, with a wrong size or
/// metadata) neither blocks nor replaces the builder's own anchor. A verifier reads
/// `getAnchorOf(enterprise, root)` for the enterprise it expects; `getAnchor(root)` (kept for
/// compatibility) answers the first anchor of the root by anyone.
contract AnchorRegistry {
    struct Anchor {
        address submitter;
        uint64 size;
        uint64 blockNumber;
        uint64 timestamp;
        bytes32 metadataDigest;
    }

    IEnterpriseRegistry private immutable _registry;

    /// enterprise => root => anchor
    mapping(address => mapping(bytes32 => Anchor)) private _anchors;
    /// root => enterprises that anchored it, first first
    mapping(bytes32 => address[]) private _anchorersOf;
    uint256 private _anchorCount;

    event Anchored(
        bytes32 indexed root, address indexed submitter, uint64 size, bytes32 metadataDigest, uint256 blockNumber
    );
    /// @notice Emitted with every `Anchored`: the enterprise the submitter anchors for.
    event AnchoredFor(bytes32 indexed root, address indexed enterprise, address indexed submitter);

    error ZeroAddress();
    error NotActiveAnchorer(address account);
    error ZeroRoot();
    error EmptyBatch();
    error RootAlreadyAnchored(bytes32 root);

    constructor(address registry) {
        if (registry == address(0)) revert ZeroAddress();
        _registry = IEnterpriseRegistry(registry);
    }

    /// @notice The EnterpriseRegistry consulted for anchoring permissions.
    function enterpriseRegistry() external view returns (address) {
        return address(_registry);
    }

    /// @notice Anchor the Merkle `root` of a batch of `size` records for the caller's enterprise;
    /// `metadataDigest` commits to off-chain batch metadata. Reverts `RootAlreadyAnchored` only
    /// when the same enterprise anchored `root` before.
    function anchor(bytes32 root, uint64 size, bytes32 metadataDigest) external {
        if (!_registry.isActiveAnchorer(msg.sender)) revert NotActiveAnchorer(msg.sender);
        if (root == bytes32(0)) revert ZeroRoot();
        if (size == 0) revert EmptyBatch();
        address enterprise = _registry.enterpriseOfAnchorer(msg.sender);
        Anchor storage a = _anchors[enterprise][root];
        if (a.blockNumber != 0) revert RootAlreadyAnchored(root);

        a.submitter = msg.sender;
        a.size = size;
        a.blockNumber = uint64(block.number);
        a.timestamp = uint64(block.timestamp);
        a.metadataDigest = metadataDigest;
        _anchorersOf[root].push(enterprise);
        _anchorCount += 1;
        emit Anchored(root, msg.sender, size, metadataDigest, block.number);
        emit AnchoredFor(root, enterprise, msg.sender);
    }

    /// @notice The anchor of `root` by `enterprise`; all zeros when that enterprise never anchored it.
    function getAnchorOf(address enterprise, bytes32 root)
        public
        view
        returns (uint256 blockNumber, address submitter, uint64 size, bytes32 metadataDigest, uint64 timestamp)
    {
        Anchor storage a = _anchors[enterprise][root];
        return (a.blockNumber, a.submitter, a.size, a.metadataDigest, a.timestamp);
    }

    /// @notice The first anchor of `root` by any enterprise (compatibility view: prefer
    /// `getAnchorOf(enterprise, root)`); all zeros when the root was never anchored.
    function getAnchor(bytes32 root)
        external
        view
        returns (uint256 blockNumber, address submitter, uint64 size, bytes32 metadataDigest, uint64 timestamp)
    {
        address[] storage list = _anchorersOf[root];
        if (list.length == 0) return (0, address(0), 0, bytes32(0), 0);
        return getAnchorOf(list[0], root);
    }

    /// @notice Enterprises that anchored `root`, in anchoring order.
    function anchorersOf(bytes32 root) external view returns (address[] memory) {
        return _anchorersOf[root];
    }

    function isAnchored(bytes32 root) external view returns (bool) {
        return _anchorersOf[root].length != 0;
    }

    function isAnchoredBy(address enterprise, bytes32 root) external view returns (bool) {
        return _anchors[enterprise][root].blockNumber != 0;
    }

    function anchorCount() external view returns (uint256) {
        return _anchorCount;
    }
}
